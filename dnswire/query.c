/* dnswire/query.c - the guest's side of a lookup: queries read strictly, empty answers
 * (REFUSED, or NOERROR with no records) built from them, and the length-prefixed framing of
 * DNS over TCP.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dnswire/dnswire.h"

static bool host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* Reads the question name at c (plain labels only) into q->name as text when it is a host
 * name. Returns the wire length of the name, or 0 if it is malformed. */
static size_t read_qname(struct cursor *c, struct dnswire_query *q)
{
	size_t wire = 0, o = 0;

	q->host_name = true;
	for (;;) {
		const uint8_t *l = cur_take(c, 1), *d;
		if (!l || *l > 63)
			return 0;
		wire += 1u + *l;
		if (wire > DNSWIRE_WIRE_MAX)
			return 0;
		if (*l == 0)
			break;
		if (!(d = cur_take(c, *l)))
			return 0;
		if (o)
			q->name[o++] = '.';
		for (size_t i = 0; i < *l; i++) {
			uint8_t ch = lower(d[i]);
			q->host_name &= host_char(ch);
			q->name[o++] = (char)ch;  /* wire <= 255 keeps o < DNSWIRE_TEXT_MAX */
		}
	}
	q->name[o] = '\0';
	if (!o || !q->host_name) {
		q->host_name = false;
		q->name[0] = '\0';
	}
	return wire;
}

int dnswire_query_parse(const uint8_t *msg, size_t len, struct dnswire_query *q)
{
	struct buf b = { msg, len };
	struct cursor c = { b, DNSWIRE_HDR, 0 };
	const uint8_t *h = buf_get(&b, 0, DNSWIRE_HDR), *tc;
	size_t name;

	memset(q, 0, sizeof(*q));
	/* QR 0 and opcode QUERY; one question; no answers or authority; EDNS at most. */
	if (!h || (h[2] & 0xf8) != 0 || dnswire_rd16(h + 4) != 1 || dnswire_rd16(h + 6) ||
	    dnswire_rd16(h + 8) || dnswire_rd16(h + 10) > 1)
		return -EBADMSG;
	if (!(name = read_qname(&c, q)) || !(tc = cur_take(&c, 4)))
		return -EBADMSG;
	q->id = dnswire_rd16(h);
	q->qtype = dnswire_rd16(tc);
	q->qclass = dnswire_rd16(tc + 2);
	q->qlen = name + 4;
	return 0;
}

size_t dnswire_reply_empty(const uint8_t *query, const struct dnswire_query *q, unsigned rcode,
			   uint8_t *out, size_t cap)
{
	size_t len = DNSWIRE_HDR + q->qlen;

	if (cap < len)
		return 0;
	memcpy(out, query, len);
	/* QR, opcode QUERY, AA 0, TC 0, RD copied; RA; the rcode; one question, nothing else. */
	out[2] = (uint8_t)(0x80 | (query[2] & 0x01));
	out[3] = (uint8_t)(0x80 | (rcode & 0x0f));
	dnswire_wr16(out + 4, 1);
	memset(out + 6, 0, 6);
	return len;
}

/* ---- TCP framing ---- */

size_t dnswire_framer_want(const struct dnswire_framer *f)
{
	return f->have < 2 ? 2 - f->have : f->msg_len - (f->have - 2);
}

bool dnswire_framer_busy(const struct dnswire_framer *f)
{
	return f->have > 0;
}

int dnswire_framer_feed(struct dnswire_framer *f, const uint8_t *p, size_t n)
{
	if (n > dnswire_framer_want(f))
		return -EINVAL;
	if (f->have < 2) {
		memcpy(f->len_be + f->have, p, n);
		f->have += n;
		if (f->have < 2)
			return 0;
		f->msg_len = dnswire_rd16(f->len_be);
		if (f->msg_len < DNSWIRE_HDR)
			return -EBADMSG;
		if (!(f->msg = malloc(f->msg_len)))
			return -ENOMEM;
		return 0;
	}
	memcpy(f->msg + (f->have - 2), p, n);
	f->have += n;
	return f->have - 2 == f->msg_len ? 1 : 0;
}

uint8_t *dnswire_framer_take(struct dnswire_framer *f, size_t *len)
{
	uint8_t *m = f->msg;

	*len = f->msg_len;
	*f = (struct dnswire_framer){ 0 };
	return m;
}

void dnswire_framer_reset(struct dnswire_framer *f)
{
	free(f->msg);
	*f = (struct dnswire_framer){ 0 };
}
