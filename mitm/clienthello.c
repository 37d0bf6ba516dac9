/* mitm/clienthello.c - the SNI and ALPN of a guest's TLS ClientHello, read from the raw
 * records before GnuTLS takes over (the TLS proxy decides by the name before it answers).
 * Hostile input: every length is checked through base/buf.h before it is used; the records
 * of one handshake message are joined (it may be fragmented) up to CH_MAX_BYTES. */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "mitm/clienthello.h"

static unsigned be16(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 2);

	return p ? (unsigned)p[0] << 8 | p[1] : 0;
}

/* Joins the handshake records' payloads into out; CH_OK once the first message is whole. */
static enum ch_result join_records(const uint8_t *p, size_t n, uint8_t *out, size_t *out_len)
{
	struct cursor c = { { p, n }, 0, 0 };
	size_t have = 0;

	for (;;) {
		const uint8_t *type = cur_take(&c, 1), *frag;
		unsigned ver, len;

		if (!type)
			return CH_MORE;
		if (*type != 22)
			return CH_BAD;   /* not a handshake record */
		ver = be16(&c);
		len = be16(&c);
		if (c.bad)
			return CH_MORE;
		if (ver >> 8 != 3 || !len || len > 16384 + 2048)
			return CH_BAD;
		if (!(frag = cur_take(&c, len)))
			return n > CH_MAX_BYTES ? CH_BAD : CH_MORE;
		if (have + len > CH_MAX_BYTES)
			return CH_BAD;
		memcpy(out + have, frag, len);
		have += len;
		if (have >= 4) {
			size_t want = 4 + ((size_t)out[1] << 16 | (size_t)out[2] << 8 | out[3]);

			if (out[0] != 1 || want > CH_MAX_BYTES)
				return CH_BAD;   /* not a ClientHello */
			if (have >= want) {
				*out_len = want;
				return CH_OK;
			}
		}
	}
}

static bool host_ok(const uint8_t *s, size_t n)
{
	if (!n || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || strchr("/\\\"'<>,;@", s[i]))
			return false;
	return true;
}

static bool read_sni(struct cursor *e, struct clienthello *ch)
{
	unsigned list = be16(e);
	const uint8_t *body = cur_take(e, list);
	struct cursor l;

	if (!body)
		return false;
	l = (struct cursor){ { body, list }, 0, 0 };
	while (cur_left(&l)) {
		const uint8_t *type = cur_take(&l, 1);
		unsigned len = be16(&l);
		const uint8_t *name = l.bad ? NULL : cur_take(&l, len);

		if (!type || !name)
			return false;
		if (*type == 0 && !ch->sni[0]) {
			if (!host_ok(name, len))
				return false;
			memcpy(ch->sni, name, len);
			ch->sni[len] = '\0';
		}
	}
	return true;
}

static bool read_alpn(struct cursor *e, struct clienthello *ch)
{
	unsigned list = be16(e);
	const uint8_t *body = cur_take(e, list);
	struct cursor l;

	if (!body)
		return false;
	ch->alpn = true;
	l = (struct cursor){ { body, list }, 0, 0 };
	while (cur_left(&l)) {
		const uint8_t *lenp = cur_take(&l, 1);
		const uint8_t *proto = lenp ? cur_take(&l, *lenp) : NULL;

		if (!proto || !*lenp)
			return false;
		if (*lenp == 2 && !memcmp(proto, "h2", 2))
			ch->alpn_h2 = true;
		if (*lenp == 8 && !memcmp(proto, "http/1.1", 8))
			ch->alpn_http11 = true;
	}
	return true;
}

static void skip8(struct cursor *c)
{
	const uint8_t *len = cur_take(c, 1);

	if (len)
		cur_take(c, *len);
}

static void skip16(struct cursor *c)
{
	unsigned len = be16(c);

	if (!c->bad)
		cur_take(c, len);
}

static enum ch_result read_hello(const uint8_t *m, size_t n, struct clienthello *ch)
{
	struct cursor c = { { m, n }, 4, 0 };   /* past type and length */
	unsigned ext_len;

	cur_take(&c, 2 + 32);                   /* legacy_version, random */
	skip8(&c);                              /* session id */
	skip16(&c);                             /* cipher suites */
	skip8(&c);                              /* compression methods */
	if (c.bad)
		return CH_BAD;
	if (!cur_left(&c))
		return CH_OK;                   /* no extensions at all: no SNI */
	ext_len = be16(&c);
	if (c.bad || ext_len != cur_left(&c))
		return CH_BAD;
	while (cur_left(&c)) {
		unsigned type = be16(&c), len = be16(&c);
		const uint8_t *body = c.bad ? NULL : cur_take(&c, len);
		struct cursor e;

		if (!body)   /* (a failed read leaves the cursor where it was: never loop on it) */
			return CH_BAD;
		e = (struct cursor){ { body, len }, 0, 0 };
		if ((type == 0 && !read_sni(&e, ch)) || (type == 16 && !read_alpn(&e, ch)))
			return CH_BAD;
	}
	return CH_OK;
}

enum ch_result clienthello_parse(const uint8_t *p, size_t n, struct clienthello *ch)
{
	uint8_t *joined = malloc(CH_MAX_BYTES);
	size_t len = 0;
	enum ch_result r;

	memset(ch, 0, sizeof(*ch));
	if (!joined)
		return CH_BAD;
	r = join_records(p, n, joined, &len);
	if (r == CH_OK)
		r = read_hello(joined, len, ch);
	free(joined);
	return r;
}
