/* mitm/h1.c - reading HTTP/1.x messages with Debian's http_parser (libhttp-parser 2.9).
 *
 * The proxy never forwards a head as it came: it reads it into a header list, decides, and
 * writes its own. So the only thing that must agree between us and the upstream is where a
 * message ends, and that is ours too (bodies are re-framed from what this parser says). We
 * still refuse what only a smuggler sends: Content-Length with Transfer-Encoding, two
 * Content-Lengths, a request Transfer-Encoding that does not end in chunked (http_parser), and
 * obsolete line folding (checked here: http_parser accepts it). A head is bounded at
 * HTTP_HEAD_MAX bytes (431).
 *
 * The parser is paused at the end of a head and at the end of a message, so the proxy can
 * decide before a body byte moves and handle pipelined requests one at a time.
 */
#include <errno.h>
#include <string.h>

#include "mitm/http.h"

static struct h1 *of(http_parser *p)
{
	return (struct h1 *)p;   /* p is the first member */
}

static int on_message_begin(http_parser *p)
{
	struct h1 *h = of(p);

	hdrs_reset(&h->hd);
	h->url = -1;
	h->url_len = 0;
	h->reason = -1;
	h->reason_len = 0;
	h->head_bytes = 0;
	h->in_head = true;
	h->line_start = false;
	h->last_value = true;
	return 0;
}

/* A header whose value callback never came (an empty value) gets "". */
static int finish_value(struct h1 *h)
{
	struct hdr *x = h->hd.n ? &h->hd.v[h->hd.n - 1] : NULL;
	int64_t off;

	if (!x || x->value != HDR_NO_VALUE)
		return 0;
	if ((off = hdrs_intern(&h->hd, "", 0)) < 0)
		return -1;
	x->value = (uint32_t)off;
	x->vlen = 0;
	return 0;
}

static int fail(struct h1 *h, enum h1_err e)
{
	h->err = e;
	return -1;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	struct h1 *h = of(p);
	int64_t off;

	if (h->url >= 0)
		return hdrs_extend(&h->hd, (uint32_t)h->url, &h->url_len, at, n) < 0 ? fail(h, H1_NOMEM) : 0;
	if ((off = hdrs_intern(&h->hd, at, n)) < 0)
		return fail(h, H1_NOMEM);
	h->url = off;
	h->url_len = (uint32_t)n;
	return 0;
}

static int on_status(http_parser *p, const char *at, size_t n)
{
	struct h1 *h = of(p);
	int64_t off;

	if (h->reason >= 0)
		return hdrs_extend(&h->hd, (uint32_t)h->reason, &h->reason_len, at, n) < 0 ? fail(h, H1_NOMEM) : 0;
	if ((off = hdrs_intern(&h->hd, at, n)) < 0)
		return fail(h, H1_NOMEM);
	h->reason = off;
	h->reason_len = (uint32_t)n;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct h1 *h = of(p);
	struct hdr *x;

	if (!h->in_head)
		return 0;   /* trailers: dropped (we re-frame the body and send none) */
	if (h->last_value) {
		h->last_value = false;
		if (finish_value(h) < 0 || hdrs_add(&h->hd, at, n, NULL, 0) < 0)
			return fail(h, H1_NOMEM);
		return 0;
	}
	x = &h->hd.v[h->hd.n - 1];
	return hdrs_extend(&h->hd, x->name, &x->nlen, at, n) < 0 ? fail(h, H1_NOMEM) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct h1 *h = of(p);
	struct hdr *x;
	int64_t off;

	if (!h->in_head || !h->hd.n)
		return 0;
	h->last_value = true;
	x = &h->hd.v[h->hd.n - 1];
	if (x->value != HDR_NO_VALUE)
		return hdrs_extend(&h->hd, x->value, &x->vlen, at, n) < 0 ? fail(h, H1_NOMEM) : 0;
	if ((off = hdrs_intern(&h->hd, at, n)) < 0)
		return fail(h, H1_NOMEM);
	x->value = (uint32_t)off;
	x->vlen = (uint32_t)n;
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct h1 *h = of(p);

	h->in_head = false;
	h->head_done = true;
	if (finish_value(h) < 0)
		return fail(h, H1_NOMEM);
	http_parser_pause(p, 1);
	/* 1 = this message has no body (a response to HEAD) */
	return h->skip_body ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct h1 *h = of(p);
	int r = h->body ? h->body(h, (const uint8_t *)at, n) : 0;

	if (r)
		h->err = (enum h1_err)r;
	return r ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
	struct h1 *h = of(p);

	h->msg_done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_status = on_status,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void h1_init(struct h1 *h, enum http_parser_type type, h1_body_fn body, void *ctx)
{
	memset(h, 0, sizeof(*h));
	http_parser_init(&h->p, type);
	h->url = -1;
	h->reason = -1;
	h->body = body;
	h->ctx = ctx;
}

void h1_free(struct h1 *h)
{
	hdrs_free(&h->hd);
}

const char *h1_url(const struct h1 *h)
{
	return h->url >= 0 ? hdrs_str(&h->hd, (uint32_t)h->url) : "";
}

const char *h1_reason(const struct h1 *h)
{
	return h->reason >= 0 ? hdrs_str(&h->hd, (uint32_t)h->reason) : "";
}

/* Scans the head bytes about to be parsed: a line that starts with SP or HT is obs-fold. */
static void scan_head(struct h1 *h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (h->line_start && (p[i] == ' ' || p[i] == '\t'))
			h->bad = true;
		h->line_start = p[i] == '\n';
	}
}

ssize_t h1_feed(struct h1 *h, const uint8_t *p, size_t n)
{
	size_t used;
	enum http_errno en;

	if (h->err)
		return -1;
	if (HTTP_PARSER_ERRNO(&h->p) == HPE_PAUSED)
		return 0;   /* the caller has not resumed yet */
	used = http_parser_execute(&h->p, &settings, (const char *)p, n);
	en = HTTP_PARSER_ERRNO(&h->p);
	if (h->in_head || h->head_done) {
		/* Head bytes (the parser stops at the end of a head): the fold check and the bound. */
		scan_head(h, p, used);
		h->head_bytes += (uint32_t)used;
	}
	if (h->err)
		return -1;
	if (en != HPE_OK && en != HPE_PAUSED) {
		h->err = en == HPE_HEADER_OVERFLOW ? H1_TOO_BIG : H1_BAD;
		return -1;
	}
	if (h->head_bytes > HTTP_HEAD_MAX && (h->in_head || h->head_done)) {
		h->err = H1_TOO_BIG;
		return -1;
	}
	if (h->bad && (h->in_head || h->head_done)) {
		h->err = H1_BAD;
		return -1;
	}
	return (ssize_t)used;
}

void h1_resume(struct h1 *h)
{
	h->msg_done = false;
	h->head_done = false;
	h->line_start = false;
	http_parser_pause(&h->p, 0);
}
