/* mitm/proxy_req.c - the request side of the HTTP/1 proxy: read a head, decide (policy by
 * name, hook rules, secrets - in the protocol's order), then write our own head
 * upstream and stream the body, re-chunked if it came chunked.
 *
 * The head's steps can wait (a host-side name lookup, an SDK hook callback): x.step says how
 * far it got, and head_continue() picks up there when the job is done. Nothing reaches the
 * upstream before every step has said yes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "mitm/proxy.h"
#include "mitm/rules.h"

static int req_body(struct h1 *h, const uint8_t *p, size_t n)
{
	struct hx *hx = h->ctx;
	struct iob *o = &hx->u.out;

	hx->x.req_body += n;
	if (hx->x.req_chunked &&
	    (iob_printf(o, "%zx\r\n", n) < 0 || iob_put(o, p, n) < 0 || iob_put(o, "\r\n", 2) < 0))
		return H1_NOMEM;
	if (!hx->x.req_chunked && iob_put(o, p, n) < 0)
		return H1_NOMEM;
	return 0;
}

void req_init(struct hx *hx)
{
	h1_init(&hx->req, HTTP_REQUEST, req_body, hx);
}

static void reply_error(struct mitm *m, struct hx *hx, int status)
{
	const char *body = status == 431 ? "Request header fields too large\n"
			 : status == 500 ? "Internal error in the sandbox's proxy\n" : "Bad request\n";

	hx_local_reply(m, hx, status, body, false, status == 500 ? "out of memory" : "bad request");
}

/* 502 (504 for a timeout) with the upstream's failure as a one-line body. */
static void reply_upstream_failed(struct mitm *m, struct hx *hx)
{
	char body[sizeof(hx->up_err) + 2];

	snprintf(body, sizeof(body), "%s\n", hx->up_err);
	hx_local_reply(m, hx, hx->up_status, body, false, hx->up_err);
}

/* The authority the request names (absolute-form URL, else Host) and the origin-form target. */
static int split_target(struct hx *hx, char *auth, size_t cap, bool *absolute)
{
	const char *url = h1_url(&hx->req), *host = hdrs_get(&hx->req.hd, "Host");
	struct http_parser_url pu;

	*absolute = false;
	auth[0] = '\0';
	if (*url != '/' && strcmp(url, "*")) {
		if (http_parser_parse_url(url, strlen(url), 0, &pu) || !(pu.field_set & (1 << UF_HOST)))
			return -EINVAL;
		uint16_t off = pu.field_data[UF_HOST].off, len = pu.field_data[UF_HOST].len;
		if (len >= cap)
			return -EINVAL;
		memcpy(auth, url + off, len);
		auth[len] = '\0';
		*absolute = true;
		const char *path = url + off + len + strcspn(url + off + len, "/?");
		if (asprintf(&hx->x.target, "%s%s", *path == '/' ? "" : "/", path) < 0)
			return -ENOMEM;
		return 0;
	}
	if (host)
		snprintf(auth, cap, "%s", host);
	hx->x.target = strdup(url);
	return hx->x.target ? 0 : -ENOMEM;
}

/* Plain HTTP: the policy for this request's host (a lookup may be needed). 1 = go on, 0 =
 * waiting, -1 = answered. */
static int step_policy_http(struct mitm *m, struct hx *hx, const char *name)
{
	struct target t;
	enum verdict v = target_decide(m, hx->f, name, &t);
	struct job *j;

	snprintf(hx->x.host, sizeof(hx->x.host), "%s", t.host);
	if (v == V_DENY) {
		hx_local_reply(m, hx, 403, "Blocked by policy\n", true, t.reason);
		return -1;
	}
	if (hx->up != UP_NONE && hx->up != UP_FAILED && !strcmp(hx->up_host, t.host) &&
	    hx->tgt.port == t.port)
		return 1;   /* the open upstream is for this host: keep it */
	hx_upstream_close(hx);   /* another host: the next connect is for it (at the send step) */
	hx->tgt = t;
	if (v == V_ALLOW)
		return 1;
	if (!(j = calloc(1, sizeof(*j)))) {
		reply_error(m, hx, 500);
		return -1;
	}
	j->kind = JOB_RESOLVE;
	snprintf(j->name, sizeof(j->name), "%s", t.host);
	if (hx_submit(m, hx, j, WAIT_RESOLVE) < 0) {
		hx_local_reply(m, hx, 502, "name lookups are overloaded\n", false, "resolver busy");
		return -1;
	}
	return 0;
}

/* TLS: the host was decided from the SNI; the allow-list may have changed since. */
static int step_policy_https(struct mitm *m, struct hx *hx)
{
	snprintf(hx->x.host, sizeof(hx->x.host), "%s", hx->tgt.host);
	if (!hx->tgt.gateway && !policy_name_allowed(m, hx->tgt.host, hx->tgt.port)) {
		hx_local_reply(m, hx, 403, "Blocked by policy\n", true, "host not in allowlist");
		return -1;
	}
	return 1;
}

static int step_secrets(struct mitm *m, struct hx *hx)
{
	const char *bad = NULL;
	int r = secrets_apply(&m->icpt->secrets, hx->x.host, &hx->req.hd, &hx->x.target,
			      &hx->x.secrets_used, &bad);

	if (r == -EACCES) {
		ml_debug("mitm: %s %s: placeholder of secret %s is not for this host", hx->x.method,
			 hx->x.host, bad);
		hx_local_reply(m, hx, 403, "secret placeholder sent to unauthorized host\n", true,
			       "secret placeholder sent to unauthorized host");
		return -1;
	}
	if (r < 0) {
		reply_error(m, hx, 500);
		return -1;
	}
	return 1;
}

static int write_head(struct hx *hx)
{
	struct h1 *r = &hx->req;
	struct iob *o = &hx->u.out;

	if (iob_printf(o, "%s %s HTTP/%u.%u\r\n", hx->x.method, hx->x.target, r->p.http_major,
		       r->p.http_minor) < 0)
		return -ENOMEM;
	if (!hdrs_get(&r->hd, "Host") && iob_printf(o, "Host: %s\r\n", hx->x.host) < 0)
		return -ENOMEM;
	/* Connection and Keep-Alive are this hop's (we keep the upstream open for the next guest
	 * connection whatever this one does), except an upgrade, which the upstream must see. */
	if (hx->x.upgrade && iob_put(o, "Connection: Upgrade\r\n", 21) < 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < r->hd.n; i++) {
		const struct hdr *x = &r->hd.v[i];
		const char *name = hdr_name(&r->hd, x);

		if (x->dead || !strcasecmp(name, "Proxy-Connection") || !strcasecmp(name, "Connection") ||
		    !strcasecmp(name, "Keep-Alive"))
			continue;
		if (iob_put(o, hdr_name(&r->hd, x), x->nlen) < 0 || iob_put(o, ": ", 2) < 0 ||
		    iob_put(o, hdr_value(&r->hd, x), x->vlen) < 0 || iob_put(o, "\r\n", 2) < 0)
			return -ENOMEM;
	}
	return iob_put(o, "\r\n", 2);
}

static void send_head(struct mitm *m, struct hx *hx)
{
	if (hx->up == UP_FAILED) {
		reply_upstream_failed(m, hx);
		return;
	}
	/* Only now, with every check passed, does anything reach the upstream (even a connect). */
	if (hx->up == UP_NONE && hx_upstream_start(m, hx) < 0)
		return;   /* answered (502) */
	if (write_head(hx) < 0) {
		reply_error(m, hx, 500);
		return;
	}
	hx->resp.skip_body = hx->x.head_req;   /* (the response parser is new if the upstream is) */
	hx->u_reusable = false;
	hx->x.head_sent = true;
	hx->tx = TX_SEND;
	hx->rs = RS_HEAD;
	h1_resume(&hx->req);
}

static void head_continue(struct mitm *m, struct hx *hx, const char *name)
{
	int r = 1;

	while (r > 0 && hx->tx == TX_WAIT) {
		switch (hx->x.step) {
		case STEP_POLICY:
			r = hx->https ? step_policy_https(m, hx) : step_policy_http(m, hx, name);
			break;
		case STEP_RULES:
			r = rules_before(m, hx);
			break;
		case STEP_SECRETS:
			r = step_secrets(m, hx);
			break;
		case STEP_SEND:
			send_head(m, hx);
			return;
		}
		if (r > 0)
			hx->x.step++;
	}
}

/* The host this request names must be the one the TLS session was opened for (else 421): a
 * guest must not ride an allowed SNI to another host, or steer a secret there. */
static bool misdirected(const struct hx *hx, const char *host)
{
	return hx->https && *host && strcmp(host, hx->sni);
}

/* Reads the head's facts into the exchange. 0, or the status to answer with. */
static int take_head(struct hx *hx, char *host, size_t cap)
{
	struct h1 *r = &hx->req;
	char auth[NAME_MAX_LEN + 8];
	bool absolute;
	int e;

	hx->x.method = strdup(http_method_str((enum http_method)r->p.method));
	hx->x.url = strdup(h1_url(r));
	hx->x.head_req = r->p.method == HTTP_HEAD;
	hx->x.upgrade = r->p.upgrade;
	hx->x.req_chunked = h1_chunked(r);
	hx->x.close = !h1_keepalive(r);
	if (!hx->x.method || !hx->x.url)
		return 500;
	if (r->p.method == HTTP_CONNECT)
		return 405;
	if (hdrs_count(&r->hd, "Host") > 1)
		return 400;
	/* A request body framed by anything but chunked last is not HTTP/1.1 (http_parser says
	 * so only once the body starts: too late, the head would be upstream already). */
	if (hdrs_get(&r->hd, "Transfer-Encoding") && !h1_chunked(r))
		return 400;
	if ((e = split_target(hx, auth, sizeof(auth), &absolute)) < 0)
		return e == -EINVAL ? 400 : 500;
	if (*auth && !host_from_authority(auth, host, cap))
		return 400;
	if (!*auth && r->p.http_major == 1 && r->p.http_minor >= 1)
		return 400;   /* HTTP/1.1 requires Host */
	if (absolute && hdrs_set(&r->hd, "Host", auth) < 0)
		return 500;
	return 0;
}

static void on_head(struct mitm *m, struct hx *hx)
{
	char host[NAME_MAX_LEN + 1] = "";
	int st;

	hx->tx = TX_WAIT;
	if ((st = take_head(hx, host, sizeof(host))) == 405) {
		hx_local_reply(m, hx, 405, "CONNECT is not supported here\n", false, "CONNECT");
		return;
	}
	if (st) {
		reply_error(m, hx, st);
		return;
	}
	if (misdirected(hx, host)) {
		snprintf(hx->x.host, sizeof(hx->x.host), "%s", host);
		hx_local_reply(m, hx, 421, "Misdirected Request: the Host does not match the TLS server name\n",
			       true, "host does not match the TLS server name");
		return;
	}
	hx->x.step = STEP_POLICY;
	head_continue(m, hx, host);
}

static bool idempotent(const char *method)
{
	static const char *const ok[] = { "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
		if (!strcmp(method, ok[i]))
			return true;
	return false;
}

bool req_retry_fresh(struct mitm *m, struct hx *hx)
{
	if (!hx->x.req_done || hx->x.req_body || hx->x.req_chunked || hx->x.upgrade || !idempotent(hx->x.method))
		return false;
	m->st.upstream_retried++;
	hx->no_pool = true;
	if (hx_upstream_start(m, hx) < 0)
		return true;   /* answered (502) */
	if (write_head(hx) < 0) {
		reply_error(m, hx, 500);
		return true;
	}
	hx->resp.skip_body = hx->x.head_req;
	hx->rs = RS_HEAD;
	hx->t0 = m->now_ms;
	return true;
}

void req_resolved(struct mitm *m, struct hx *hx, struct job *j)
{
	hx->wait = WAIT_NONE;
	if (j->err) {
		char body[NAME_MAX_LEN + 40];

		snprintf(body, sizeof(body), "cannot resolve %s\n", hx->tgt.host);
		hx_local_reply(m, hx, 502, body, false, "cannot resolve host");
		return;
	}
	if (target_pick(m, &hx->tgt, j->addrs, j->n_addrs) == V_DENY) {
		hx_local_reply(m, hx, 403, "Blocked by policy\n", true, hx->tgt.reason);
		return;
	}
	hx->x.step = STEP_RULES;
	head_continue(m, hx, NULL);
}

void req_hook_done(struct mitm *m, struct hx *hx)
{
	hx->wait = WAIT_NONE;
	if (hx->tx == TX_WAIT) {
		hx->x.step = STEP_RULES;   /* the rules go on after the one that called the hook */
		head_continue(m, hx, NULL);
	}
}

void req_upstream_ready(struct mitm *m, struct hx *hx)
{
	if (hx->up == UP_READY && hx->tx == TX_SEND && hx->rs == RS_HEAD)
		hx->t0 = m->now_ms;   /* the response timer counts from when the request can go */
	if (hx->up != UP_FAILED || hx->stage != ST_HTTP)
		return;   /* ready: the driver flushes; a TLS flow's early failure waits for a request */
	if ((hx->tx == TX_WAIT && hx->wait == WAIT_NONE && hx->x.step >= STEP_SECRETS) ||
	    (hx->tx == TX_SEND && hx->rs == RS_HEAD))
		reply_upstream_failed(m, hx);
	else if (hx->tx == TX_SEND)
		hx->fatal = true;   /* mid-response: the guest can only be reset */
}

/* Feeds the guest's bytes to the request parser as far as the upstream side has room. */
bool req_pump(struct mitm *m, struct hx *hx)
{
	struct ep *g = &hx->g;
	size_t room, n;
	ssize_t used;

	if (hx->tx == TX_IDLE || hx->tx == TX_HEAD) {
		if (!g->in.len)
			return false;
		if (hx->tx == TX_IDLE) {
			hx->tx = TX_HEAD;
			hx->t0 = m->now_ms;
			hx->x.start_ms = m->now_ms;
		}
		used = h1_feed(&hx->req, g->in.d + g->in.off, g->in.len);
		if (used < 0) {
			reply_error(m, hx, hx->req.err);
			return true;
		}
		iob_consume(&g->in, (size_t)used);
		if (hx->req.head_done)
			on_head(m, hx);
		return used > 0 || hx->tx != TX_HEAD;
	}
	if (hx->tx != TX_SEND || hx->x.req_done || !ep_out_room(&hx->u))
		return false;
	room = IOB_SOFT_CAP - hx->u.out.len;
	n = g->in.len < room ? g->in.len : room;
	if (!n)
		return false;
	used = h1_feed(&hx->req, g->in.d + g->in.off, n);
	if (used < 0) {
		if (hx->rs == RS_HEAD)
			reply_error(m, hx, hx->req.err);
		else
			hx->fatal = true;
		return true;
	}
	iob_consume(&g->in, (size_t)used);
	if (hx->req.msg_done) {
		if (hx->x.req_chunked && iob_put(&hx->u.out, "0\r\n\r\n", 5) < 0) {
			hx->fatal = true;
			return true;
		}
		hx->x.req_done = true;
		hx->t0 = m->now_ms;   /* the response timer starts */
		return true;
	}
	return used > 0;
}
