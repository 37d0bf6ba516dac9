/* tests/fuzz/dns_query.c - the guest's DNS bytes: a TCP stream cut by the dnswire framer in
 * arbitrary chunk sizes (the first byte picks them), each message then read as a query
 * (dnswire_query_parse) and, when accepted, answered empty (dnswire_reply_empty); the same
 * bytes are also read as a reply (dnswire_parse_answer). Checked beyond sanitizers: the
 * framer never hands out more than it was fed nor a message shorter than a header; an
 * accepted query has a question inside the message and a name that is empty or a lowercase
 * host name; its empty answer is exactly header + question with the query's id and question. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnswire/dnswire.h"

static void check_name(const struct dnswire_query *q)
{
	size_t len = strnlen(q->name, sizeof(q->name));

	if (len == sizeof(q->name) || q->host_name != (len > 0))
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = q->name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			abort();
	}
	if (len && (q->name[0] == '.' || q->name[len - 1] == '.' || strstr(q->name, "..")))
		abort();
}

static void one_message(const uint8_t *msg, size_t len)
{
	struct dnswire_query q;
	struct dnswire_answer a;
	uint8_t out[DNSWIRE_HDR + DNSWIRE_WIRE_MAX + 4];
	size_t n;

	if (dnswire_query_parse(msg, len, &q) == 0) {
		if (q.qlen < 5 || DNSWIRE_HDR + q.qlen > len || q.qlen > DNSWIRE_WIRE_MAX + 4)
			abort();
		check_name(&q);
		n = dnswire_reply_empty(msg, &q, DNSWIRE_RCODE_REFUSED, out, sizeof(out));
		if (n != DNSWIRE_HDR + q.qlen || memcmp(out, msg, 2) || memcmp(out + 12, msg + 12, q.qlen) ||
		    (out[3] & 0x0f) != DNSWIRE_RCODE_REFUSED || !(out[2] & 0x80))
			abort();
	}
	if (dnswire_parse_answer(msg, len, &a) == 0 && (a.n > DNSWIRE_ADDRS_MAX || a.n_chain > DNSWIRE_CHAIN_MAX))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dnswire_framer f = { 0 };
	size_t chunk = size ? (size_t)data[0] % 64 + 1 : 1, off = size ? 1 : 0, handed = 0;

	while (off < size) {
		size_t want = dnswire_framer_want(&f), n = size - off;
		int r;
		if (n > want)
			n = want;
		if (n > chunk)
			n = chunk;
		/* an exact-size heap copy: ASan sees any read past what was fed */
		uint8_t *piece = malloc(n);
		if (!piece)
			return 0;
		memcpy(piece, data + off, n);
		r = dnswire_framer_feed(&f, piece, n);
		free(piece);
		off += n;
		if (r < 0)
			break;
		if (r == 1) {
			size_t len;
			uint8_t *msg = dnswire_framer_take(&f, &len);
			handed += len + 2;
			if (len < DNSWIRE_HDR || handed > size)
				abort();
			one_message(msg, len);
			free(msg);
		}
	}
	dnswire_framer_reset(&f);
	return 0;
}
