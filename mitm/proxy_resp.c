/* mitm/proxy_resp.c - the response side of the HTTP/1 proxy: read the upstream's head, let the
 * after-phase rules see it, write our own head to the guest, stream the body (re-chunked if it
 * came chunked, rewritten by a rule if one says so), and after a 101 relay both ways as they
 * are (WebSocket). Interim responses (100 Continue, 103) are passed on as they come.
 *
 * Bodies are never held back: each piece the parser hands over goes to the guest's buffer at
 * once (an SSE event reaches the guest when it reaches us), and the upstream is read only
 * while that buffer has room, so a slow guest slows the upstream down instead of filling memory.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mitm/proxy.h"
#include "mitm/rules.h"
#include "mitm/tls.h"

int resp_write_body(struct hx *hx, const uint8_t *p, size_t n)
{
	struct iob *o = &hx->g.out;

	if (!n)
		return 0;
	if (hx->x.out_chunked &&
	    (iob_printf(o, "%zx\r\n", n) < 0 || iob_put(o, p, n) < 0 || iob_put(o, "\r\n", 2) < 0))
		return -ENOMEM;
	if (!hx->x.out_chunked && iob_put(o, p, n) < 0)
		return -ENOMEM;
	return 0;
}

static int resp_body(struct h1 *h, const uint8_t *p, size_t n)
{
	struct hx *hx = h->ctx;

	hx->x.resp_body += n;
	if (hx->x.xf)
		return rules_xform_feed(hx, p, n) < 0 ? H1_NOMEM : 0;
	return resp_write_body(hx, p, n) < 0 ? H1_NOMEM : 0;
}

void resp_init(struct hx *hx)
{
	h1_init(&hx->resp, HTTP_RESPONSE, resp_body, hx);
	hx->resp_eof_fed = false;
}

int resp_write_head(struct hx *hx)
{
	struct h1 *r = &hx->resp;
	struct iob *o = &hx->g.out;
	const char *reason = h1_reason(r);

	if (!*reason)
		reason = http_status_str((enum http_status)r->p.status_code);
	if (iob_printf(o, "HTTP/%u.%u %u %s\r\n", r->p.http_major, r->p.http_minor,
		       r->p.status_code, reason) < 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < r->hd.n; i++) {
		const struct hdr *x = &r->hd.v[i];

		if (x->dead)
			continue;
		if (iob_put(o, hdr_name(&r->hd, x), x->nlen) < 0 || iob_put(o, ": ", 2) < 0 ||
		    iob_put(o, hdr_value(&r->hd, x), x->vlen) < 0 || iob_put(o, "\r\n", 2) < 0)
			return -ENOMEM;
	}
	return iob_put(o, "\r\n", 2);
}

static bool no_body(const struct hx *hx, unsigned status)
{
	return hx->x.head_req || status < 200 || status == 204 || status == 304;
}

/* The framing headers are ours: we frame the body as the parser read it, whatever a hook
 * left in the head (it may have replaced every header). */
static int own_framing(struct hx *hx)
{
	struct h1 *r = &hx->resp;
	char len[32];

	if (hx->x.out_chunked) {
		if (hdrs_has_token(&r->hd, "Transfer-Encoding", "chunked"))
			return 0;
		hdrs_del(&r->hd, "Content-Length");
		return hdrs_set(&r->hd, "Transfer-Encoding", "chunked");
	}
	if (!h1_has_length(r)) {
		hdrs_del(&r->hd, "Content-Length");   /* the body ends at close */
		return 0;
	}
	hdrs_del(&r->hd, "Transfer-Encoding");
	snprintf(len, sizeof(len), "%llu", (unsigned long long)r->p.content_length);
	return hdrs_get(&r->hd, "Content-Length") ? 0 : hdrs_set(&r->hd, "Content-Length", len);
}

void resp_head_go(struct mitm *m, struct hx *hx)
{
	struct h1 *r = &hx->resp;
	unsigned status = r->p.status_code;
	int e = 0;

	(void)m;
	if (!no_body(hx, status)) {
		if (h1_chunked(r))
			hx->x.out_chunked = true;
		else if (!h1_has_length(r))
			hx->x.close = true;   /* the body ends when the upstream closes: so do we */
		/* (the parser's content_length counts down as the body is read: frame it now) */
		e = own_framing(hx);
		if (e == 0 && hx->x.xf)
			e = rules_xform_head(hx);
	}
	/* a whole-body rewrite writes the head once the body is known (bodyx.c) */
	if (e == 0 && !bodyx_holds_head(hx))
		e = resp_write_head(hx);
	if (e < 0) {
		hx->fatal = true;
		return;
	}
	hx->rs = RS_BODY;
	h1_resume(r);
}

static void on_head(struct mitm *m, struct hx *hx)
{
	unsigned status = hx->resp.p.status_code;
	int r;

	if (status < 200 && status != 101) {
		/* interim: passed on, the final response follows */
		if (resp_write_head(hx) < 0)
			hx->fatal = true;
		h1_resume(&hx->resp);
		return;
	}
	hx->x.status = (int)status;
	if (status == 101 && !hx->x.upgrade) {
		hx_local_reply(m, hx, 502, "upstream switched protocols unasked\n", false, "unexpected 101");
		return;
	}
	r = rules_after(m, hx);
	if (r > 0)
		resp_head_go(m, hx);
}

static void exchange_done(struct mitm *m, struct hx *hx)
{
	/* (the guest's Connection header is not forwarded: the upstream keeps its own) */
	bool up_keep = h1_keepalive(&hx->resp) && !hx->resp_eof_fed &&
		       (hx->req.p.http_major > 1 || hx->req.p.http_minor >= 1);
	bool g_keep = !hx->x.close && h1_keepalive(&hx->req) && hx->x.req_done;
	bool was_upgrade = hx->x.upgrade;

	hx_emit(m, hx, false, "");
	if (hx->https)
		tls_client_remember(m, hx);
	hx->no_pool = false;
	hx->tx = g_keep ? TX_IDLE : TX_CLOSING;
	if (!up_keep) {
		hx_upstream_close(hx);
	} else {
		h1_resume(&hx->resp);
		hx->u_reusable = true;
	}
	if (!g_keep) {
		hx->g.close_after = true;
		hx->t0 = m->now_ms;
		if (!hx->x.req_done && hx->f->ufd >= 0) {
			/* the response came before the whole request: the upstream must not wait for it */
			flow_reset_on_close(hx->f->ufd);
			hx_upstream_close(hx);
		}
		return;
	}
	hx_xchg_clear(hx);
	if (was_upgrade) {
		/* http_parser stops at an upgrade request; a refused upgrade starts afresh */
		h1_free(&hx->req);
		req_init(hx);
	} else {
		h1_resume(&hx->req);
	}
}

static int move_all(struct iob *to, struct iob *from)
{
	if (!from->len)
		return 0;
	if (iob_put(to, from->d + from->off, from->len) < 0)
		return -ENOMEM;
	iob_consume(from, from->len);
	return 1;
}

static void on_done(struct mitm *m, struct hx *hx)
{
	unsigned status = hx->resp.p.status_code;

	if (status < 200 && status != 101) {
		h1_resume(&hx->resp);   /* the interim response ended; the final one is next */
		return;
	}
	if (hx->x.xf && rules_xform_end(hx) < 0)
		hx->fatal = true;
	if (hx->x.out_chunked && iob_put(&hx->g.out, "0\r\n\r\n", 5) < 0)
		hx->fatal = true;
	hx->rs = RS_DONE;
	if (status == 101) {
		hx_emit(m, hx, false, "");
		hx->tx = TX_TUNNEL;
		hx->u.want_read = hx->g.want_read = true;
		if (move_all(&hx->u.out, &hx->g.in) < 0 || move_all(&hx->g.out, &hx->u.in) < 0)
			hx->fatal = true;
		return;
	}
	exchange_done(m, hx);
}

static bool resp_pump_once(struct mitm *m, struct hx *hx)
{
	struct ep *u = &hx->u;
	size_t room, n;
	ssize_t used;

	if (hx->tx != TX_SEND || hx->up != UP_READY || hx->rs == RS_WAIT || hx->rs == RS_DONE)
		return false;
	if (u->err && !u->in.len) {
		if (hx->rs == RS_HEAD && hx->u_from_pool && !hx->x.resp_seen && req_retry_fresh(m, hx))
			return true;   /* a parked connection that had died */
		if (hx->rs == RS_HEAD)
			hx_local_reply(m, hx, 502, "upstream connection failed\n", false, "upstream connection failed");
		else
			hx->fatal = true;
		return true;
	}
	if (!ep_out_room(&hx->g))
		return false;
	room = IOB_SOFT_CAP - hx->g.out.len;
	n = u->in.len < room ? u->in.len : room;
	if (!n && (!u->eof || hx->resp_eof_fed))
		return false;
	if (!n && hx->rs == RS_HEAD && hx->u_from_pool && !hx->x.resp_seen && req_retry_fresh(m, hx))
		return true;   /* a parked connection the upstream had closed */
	if (!n)
		hx->resp_eof_fed = true;   /* tells the parser the upstream closed */
	else
		hx->x.resp_seen = true;
	used = h1_feed(&hx->resp, n ? u->in.d + u->in.off : (const uint8_t *)"", n);
	if (used < 0) {
		if (hx->rs == RS_HEAD)
			hx_local_reply(m, hx, 502, "upstream sent a malformed response\n", false, "malformed response");
		else if (bodyx_holds_head(hx))   /* nothing went to the guest yet */
			hx_local_reply(m, hx, 502, "the response is too large for the body rewrite\n", false,
				       "response too large for body rules");
		else
			hx->fatal = true;
		return true;
	}
	iob_consume(&u->in, (size_t)used);
	if (hx->resp.head_done)
		on_head(m, hx);
	if (hx->resp.msg_done && hx->tx == TX_SEND)
		on_done(m, hx);
	else if (hx->resp_eof_fed && hx->tx == TX_SEND && hx->rs == RS_HEAD)
		hx_local_reply(m, hx, 502, "upstream closed the connection without answering\n", false,
			       "upstream closed");
	else if (hx->resp_eof_fed && hx->tx == TX_SEND && hx->rs == RS_BODY)
		hx->fatal = true;   /* the body was cut short */
	return true;
}

bool resp_pump(struct mitm *m, struct hx *hx)
{
	enum hx_rs was = hx->rs;
	bool p = resp_pump_once(m, hx);

	/* The parser stops after a head; the body bytes that came with it (a small response is
	 * one read) are fed now, so head and body leave in one TLS record and one send. */
	if (p && was == RS_HEAD && hx->rs == RS_BODY && hx->tx == TX_SEND && hx->u.in.len)
		resp_pump_once(m, hx);
	return p;
}

bool tunnel_pump(struct hx *hx)
{
	bool p = false;
	int r;

	if (hx->u.err) {
		hx->fatal = true;
		return true;
	}
	if (ep_out_room(&hx->u) && (r = move_all(&hx->u.out, &hx->g.in)) != 0)
		p = true, hx->fatal |= r < 0;
	if (ep_out_room(&hx->g) && (r = move_all(&hx->g.out, &hx->u.in)) != 0)
		p = true, hx->fatal |= r < 0;
	if (hx->g.eof && !hx->g.in.len && !hx->u.close_after)
		p = hx->u.close_after = true;
	if (hx->u.eof && !hx->u.in.len && !hx->g.close_after)
		p = hx->g.close_after = true;
	return p;
}
