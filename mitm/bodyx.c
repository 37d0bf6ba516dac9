/* mitm/bodyx.c - rewriting a response body for the after-phase rules.
 *
 *   SSE (Content-Type text/event-stream) with replacements: rewritten as it streams, line by
 *     line: only the payload of lines starting "data:" is touched, line endings are kept, and a
 *     line goes out the moment its newline arrives (no event is held back). The length header
 *     goes; the body is chunked towards an HTTP/1.1 guest (else it ends at close).
 *   any other body with replacements: held whole (up to BODYX_MAX; more -> 502), every
 *     replacement applied in order (literal, all occurrences), then the head with the new
 *     Content-Length and the body.
 *   a body set by a hook (set_body_base64): the upstream's body is read and dropped; the set
 *     body (with the replacements applied) goes out with its Content-Length and without the
 *     upstream's Content-Encoding.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mitm/rules.h"

#define SSE_LINE_MAX (1u << 20)   /* a longer "line" is passed on as it is */

enum bx_mode { BX_UNDECIDED, BX_SSE, BX_WHOLE, BX_SET };

struct body_xform {
	enum bx_mode mode;
	struct kv *repl;
	size_t n_repl;
	struct iob line;     /* SSE: the line being read */
	struct iob whole;    /* BX_WHOLE: the body so far */
	uint8_t *set;        /* BX_SET: the body to send */
	size_t set_len;
	bool has_set;
};

static struct body_xform *xf_of(struct hx *hx)
{
	if (!hx->x.xf)
		hx->x.xf = calloc(1, sizeof(struct body_xform));
	return hx->x.xf;
}

void rules_xform_free(struct body_xform *xf)
{
	if (!xf)
		return;
	kv_free(xf->repl, xf->n_repl);
	iob_free(&xf->line);
	iob_free(&xf->whole);
	free(xf->set);
	free(xf);
}

int bodyx_add_repl(struct hx *hx, const char *find, const char *replace)
{
	struct body_xform *xf = xf_of(hx);
	struct kv *r;

	if (!xf || !(r = realloc(xf->repl, (xf->n_repl + 1) * sizeof(*r))))
		return -ENOMEM;
	xf->repl = r;
	r = &xf->repl[xf->n_repl++];
	r->k = strdup(find);
	r->v = strdup(replace);
	return r->k && r->v ? 0 : -ENOMEM;
}

int bodyx_set_body(struct hx *hx, const uint8_t *p, size_t n)
{
	struct body_xform *xf = xf_of(hx);

	if (!xf)
		return -ENOMEM;
	free(xf->set);
	xf->set = malloc(n ? n : 1);
	if (!xf->set)
		return -ENOMEM;
	memcpy(xf->set, p, n);
	xf->set_len = n;
	xf->has_set = true;
	return 0;
}

static bool no_body(const struct hx *hx)
{
	unsigned s = hx->resp.p.status_code;

	return hx->x.head_req || s < 200 || s == 204 || s == 304;
}

void bodyx_choose(struct hx *hx)
{
	struct body_xform *xf = hx->x.xf;
	const char *ct = hdrs_get(&hx->resp.hd, "Content-Type");

	if (!xf)
		return;
	if (no_body(hx) || (!xf->has_set && !xf->n_repl)) {
		rules_xform_free(xf);
		hx->x.xf = NULL;
		return;
	}
	xf->mode = xf->has_set ? BX_SET : ct && !strncasecmp(ct, "text/event-stream", 17) ? BX_SSE : BX_WHOLE;
}

bool bodyx_holds_head(const struct hx *hx)
{
	return hx->x.xf && (hx->x.xf->mode == BX_WHOLE || hx->x.xf->mode == BX_SET);
}

/* p with every replacement applied, in order, into out. */
static int replace_all(const struct body_xform *xf, const uint8_t *p, size_t n, struct iob *out)
{
	struct iob a = { 0 }, b = { 0 };
	const uint8_t *src = p;
	size_t len = n;
	int r = 0;

	for (size_t i = 0; r == 0 && i < xf->n_repl; i++) {
		size_t fl = strlen(xf->repl[i].k), vl = strlen(xf->repl[i].v), at = 0;
		struct iob *dst = i % 2 ? &b : &a;

		dst->off = dst->len = 0;
		while (r == 0 && at < len) {
			const uint8_t *hit = memmem(src + at, len - at, xf->repl[i].k, fl);
			size_t upto = hit ? (size_t)(hit - src) : len;

			r = iob_put(dst, src + at, upto - at);
			if (r == 0 && hit)
				r = iob_put(dst, xf->repl[i].v, vl);
			at = hit ? upto + fl : len;
		}
		src = dst->d ? dst->d + dst->off : (const uint8_t *)"";
		len = dst->len;
	}
	if (r == 0)
		r = iob_put(out, src, len);
	iob_free(&a);
	iob_free(&b);
	return r;
}

int rules_xform_head(struct hx *hx)
{
	if (!hx->x.xf || hx->x.xf->mode != BX_SSE)
		return 0;
	hdrs_del(&hx->resp.hd, "Content-Length");
	if (hx->x.out_chunked)
		return 0;
	if (hx->req.p.http_major == 1 && hx->req.p.http_minor >= 1) {
		hx->x.out_chunked = true;
		return hdrs_set(&hx->resp.hd, "Transfer-Encoding", "chunked");
	}
	hx->x.close = true;   /* an HTTP/1.0 guest: the body ends at close */
	return 0;
}

/* One SSE line (with its ending): the payload of a data: line rewritten. */
static int sse_line(struct hx *hx, const uint8_t *p, size_t n)
{
	struct body_xform *xf = hx->x.xf;
	struct iob o = { 0 };
	size_t body = n;
	int r;

	if (n < 5 || memcmp(p, "data:", 5))
		return resp_write_body(hx, p, n);
	while (body > 5 && (p[body - 1] == '\n' || p[body - 1] == '\r'))
		body--;
	r = iob_put(&o, p, 5);
	if (r == 0)
		r = replace_all(xf, p + 5, body - 5, &o);
	if (r == 0)
		r = iob_put(&o, p + body, n - body);
	if (r == 0)
		r = resp_write_body(hx, o.d + o.off, o.len);
	iob_free(&o);
	return r;
}

static int sse_feed(struct hx *hx, const uint8_t *p, size_t n)
{
	struct body_xform *xf = hx->x.xf;
	int r = 0;

	while (r == 0 && n) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) + 1 : n;

		if (!nl && xf->line.len + k > SSE_LINE_MAX) {
			/* no newline in sight: pass what we hold on as it is, bounded */
			r = resp_write_body(hx, xf->line.d + xf->line.off, xf->line.len);
			iob_free(&xf->line);
			if (r == 0)
				r = resp_write_body(hx, p, k);
		} else if (nl && !xf->line.len) {
			r = sse_line(hx, p, k);
		} else if ((r = iob_put(&xf->line, p, k)) == 0 && nl) {
			r = sse_line(hx, xf->line.d + xf->line.off, xf->line.len);
			iob_free(&xf->line);
		}
		p += k;
		n -= k;
	}
	return r;
}

int rules_xform_feed(struct hx *hx, const uint8_t *p, size_t n)
{
	struct body_xform *xf = hx->x.xf;

	switch (xf->mode) {
	case BX_SSE:
		return sse_feed(hx, p, n);
	case BX_WHOLE:
		if (xf->whole.len + n > BODYX_MAX)
			return -EFBIG;
		return iob_put(&xf->whole, p, n);
	case BX_SET:
		return 0;   /* the upstream's body is dropped */
	default:
		return resp_write_body(hx, p, n);
	}
}

int rules_xform_end(struct hx *hx)
{
	struct body_xform *xf = hx->x.xf;
	struct iob body = { 0 };
	char len[32];
	int r;

	if (xf->mode == BX_SSE) {
		r = xf->line.len ? sse_line(hx, xf->line.d + xf->line.off, xf->line.len) : 0;
		iob_free(&xf->line);
		return r;
	}
	if (xf->mode != BX_WHOLE && xf->mode != BX_SET)
		return 0;
	r = xf->mode == BX_SET ? replace_all(xf, xf->set, xf->set_len, &body)
			       : replace_all(xf, xf->whole.d ? xf->whole.d + xf->whole.off : NULL, xf->whole.len, &body);
	snprintf(len, sizeof(len), "%zu", body.len);
	hdrs_del(&hx->resp.hd, "Transfer-Encoding");
	if (xf->mode == BX_SET)
		hdrs_del(&hx->resp.hd, "Content-Encoding");
	hx->x.out_chunked = false;
	if (r == 0)
		r = hdrs_set(&hx->resp.hd, "Content-Length", len);
	if (r == 0)
		r = resp_write_head(hx);
	if (r == 0 && body.len)
		r = iob_put(&hx->g.out, body.d + body.off, body.len);
	iob_free(&body);
	iob_free(&xf->whole);
	return r;
}
