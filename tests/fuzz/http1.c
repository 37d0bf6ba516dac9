/* tests/fuzz/http1.c - hostile bytes through the proxy's HTTP/1 reader (mitm/h1.c over
 * http_parser), fed the way the proxy feeds it: in pieces, resuming after every head and every
 * message. The first byte picks request or response and the piece size. Beyond crashes and
 * sanitizer reports, the contract is checked: a head is never over the bound, every header
 * string is NUL-terminated where the list says it ends, and a request head we accept, written
 * out again the way the proxy writes heads upstream, parses back to the same method, target
 * and headers (so what we send upstream is what we decided on). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mitm/http.h"

static uint64_t body_bytes;

static int on_body(struct h1 *h, const uint8_t *p, size_t n)
{
	(void)h;
	(void)p;
	body_bytes += n;
	return 0;
}

static void check_head(const struct h1 *h)
{
	if (h->head_bytes > HTTP_HEAD_MAX + 80 * 1024)
		abort();
	for (uint32_t i = 0; i < h->hd.n; i++) {
		const struct hdr *x = &h->hd.v[i];

		if (x->value == HDR_NO_VALUE || strlen(hdr_name(&h->hd, x)) != x->nlen ||
		    strlen(hdr_value(&h->hd, x)) > x->vlen)
			abort();
	}
}

/* Our own head for h, parsed again: the same method, target and header list. */
static void round_trip(const struct h1 *h)
{
	struct iob o = { 0 };
	struct h1 again;
	ssize_t used;

	iob_printf(&o, "%s %s HTTP/1.1\r\n", http_method_str((enum http_method)h->p.method), h1_url(h));
	for (uint32_t i = 0; i < h->hd.n; i++) {
		iob_put(&o, hdr_name(&h->hd, &h->hd.v[i]), h->hd.v[i].nlen);
		iob_put(&o, ": ", 2);
		iob_put(&o, hdr_value(&h->hd, &h->hd.v[i]), h->hd.v[i].vlen);
		iob_put(&o, "\r\n", 2);
	}
	iob_put(&o, "\r\n", 2);
	h1_init(&again, HTTP_REQUEST, NULL, NULL);
	used = h1_feed(&again, o.d, o.len);
	if (used < 0 || !again.head_done || again.p.method != h->p.method ||
	    strcmp(h1_url(&again), h1_url(h)) || again.hd.n != h->hd.n)
		abort();
	for (uint32_t i = 0; i < h->hd.n; i++)
		if (strcmp(hdr_name(&again.hd, &again.hd.v[i]), hdr_name(&h->hd, &h->hd.v[i])))
			abort();
	h1_free(&again);
	iob_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h1 h;
	size_t off = 1, piece;
	bool request;
	int rounds = 0;

	if (!size)
		return 0;
	request = !(data[0] & 1);
	piece = (data[0] >> 1) + 1;
	h1_init(&h, request ? HTTP_REQUEST : HTTP_RESPONSE, on_body, NULL);
	h.skip_body = data[0] & 0x80;
	while (off < size && rounds++ < 100000) {
		size_t n = size - off < piece ? size - off : piece;
		uint8_t *copy = malloc(n);
		ssize_t used;

		memcpy(copy, data + off, n);
		used = h1_feed(&h, copy, n);
		free(copy);
		if (used < 0)
			break;
		off += (size_t)used;
		if (h.head_done) {
			check_head(&h);
			if (request && h.p.method != HTTP_CONNECT)
				round_trip(&h);
			hdrs_has_token(&h.hd, "Connection", "close");
			h1_resume(&h);
		} else if (h.msg_done) {
			h1_resume(&h);
		} else if (!used) {
			break;
		}
	}
	h1_feed(&h, (const uint8_t *)"", 0);
	h1_free(&h);
	return 0;
}
