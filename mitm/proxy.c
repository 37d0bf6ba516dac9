/* mitm/proxy.c - the intercepting HTTP/1 proxy handler: one guest connection on TCP/80 (plain)
 * or TCP/443 (TLS, see tlsflow.c for the stages before HTTP), its upstream connection, timers,
 * the replies we write ourselves (403, 421, 400, 431, 502, 504) and the events.
 *
 * The driver (hx_advance) runs every piece that can move - flush both ends, read both ends,
 * the request side (proxy_req.c), the response side (proxy_resp.c) - until nothing does, so a
 * handler step never depends on which fd woke it (GnuTLS may hold decrypted bytes no poll
 * reports). Memory: buffers exist only while they hold bytes; an idle keep-alive connection
 * is this struct, two parsers and whatever GnuTLS keeps per session.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/h2.h"
#include "mitm/proxy.h"
#include "mitm/tls.h"

#define LINGER_MS 2000          /* after our last byte, how long we drain what the guest still sends */
#define RESOLVE_TIMEOUT_MS 30000
#define ADVANCE_ROUNDS 64

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hx_xchg_clear(struct hx *hx)
{
	free(hx->x.method);
	free(hx->x.url);
	free(hx->x.target);
	rules_xform_free(hx->x.xf);
	hx->x = (struct xchg){ 0 };
}

static size_t path_len(const char *url)
{
	const char *p = url;

	if (*p != '/' && strstr(p, "://")) {   /* absolute-form: the path starts after the authority */
		p = strstr(p, "://") + 3;
		p += strcspn(p, "/?");
		return strcspn(p, "?");
	}
	return strcspn(url, "?");
}

void hx_emit(struct mitm *m, struct hx *hx, bool blocked, const char *reason)
{
	struct intercept *ic = m->icpt;
	const char *names[64];
	const char *url = hx->x.url ? hx->x.url : "";
	char *full = NULL, *path = NULL;
	size_t n = 0;
	const char *p = url;

	for (size_t i = 0; i < ic->secrets.n && i < 64; i++)
		if (hx->x.secrets_used & (1ull << i))
			names[n++] = ic->secrets.v[i].name;
	if (*url == '/' || !*url) {
		if (asprintf(&full, "%s://%s%s", hx->https ? "https" : "http", hx->x.host, url) < 0)
			full = NULL;
	} else if (strstr(url, "://")) {
		p = strstr(url, "://") + 3;
		p += strcspn(p, "/?");
	}
	path = strndup(p, path_len(p));
	struct mitm_http_event ev = {
		.time_ms = real_ms(),
		.method = hx->x.method ? hx->x.method : "",
		.url = full ? full : url,
		.host = hx->x.host[0] ? hx->x.host : hx->sni,
		.path = path ? path : "",
		.status = hx->x.status,
		.request_bytes = hx->x.req_body,
		.response_bytes = hx->x.resp_body,
		.duration_ms = hx->x.start_ms ? (uint32_t)(m->now_ms - hx->x.start_ms) : 0,
		.blocked = blocked,
		.reason = reason ? reason : "",
		.rule = hx->x.rule,
		.secrets = names,
		.n_secrets = n,
	};
	audit_event(m, &ev);
	free(full);
	free(path);
}

void hx_upstream_close(struct hx *hx)
{
	struct mitm_flow *f = hx->f;

	if (f->ufd >= 0) {
		/* mid-exchange: the upstream must not take a half request as a whole one */
		if (hx->tx == TX_SEND || hx->tx == TX_TUNNEL)
			flow_reset_on_close(f->ufd);
		close(f->ufd);
		f->ufd = -1;
	}
	ep_free(&hx->u);
	hx->u = (struct ep){ .fdp = &f->ufd, .hs_done = true, .want_read = true };
	hx->up = UP_NONE;
	hx->up_host[0] = '\0';
	hx->u_remembered = false;
	hx->u_reusable = false;
	hx->u_from_pool = false;
	hx->u_offered_h2 = false;
	h1_free(&hx->resp);
	resp_init(hx);
}

void hx_local_reply(struct mitm *m, struct hx *hx, int status, const char *body,
		    bool blocked, const char *reason)
{
	const char *text = http_status_str((enum http_status)status);

	hx->x.status = status;
	if (!hx->x.start_ms)
		hx->x.start_ms = m->now_ms;
	iob_printf(&hx->g.out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, text, strlen(body), body);
	hx->x.resp_body = strlen(body);
	hx_emit(m, hx, blocked, reason);
	hx_upstream_close(hx);
	if (hx->job) {
		worker_cancel(m->icpt->worker, hx->job);
		hx->job = NULL;
	}
	hx->wait = WAIT_NONE;
	hx->tx = TX_CLOSING;
	hx->t0 = m->now_ms;
	hx->g.close_after = true;
}

int hx_submit(struct mitm *m, struct hx *hx, struct job *j, enum hx_wait w)
{
	int r;

	j->flow_id = hx->f->id;
	if ((r = worker_submit(m->icpt->worker, j)) < 0) {
		job_free(j);
		return r;
	}
	hx->job = j;
	hx->wait = w;
	hx->t0 = m->now_ms;
	return 0;
}

static void up_failed(struct mitm *m, struct hx *hx, int status, const char *fmt, const char *detail)
{
	char why[sizeof(hx->up_err)];

	snprintf(why, sizeof(why), fmt, detail);   /* detail may be hx->up_err itself */
	memcpy(hx->up_err, why, sizeof(why));
	hx->up_status = status;
	if (hx->f->ufd >= 0) {
		close(hx->f->ufd);
		hx->f->ufd = -1;
	}
	ep_free(&hx->u);
	hx->u = (struct ep){ .fdp = &hx->f->ufd, .hs_done = true, .want_read = true };
	hx->up = UP_FAILED;
	m->st.connect_failed++;
	req_upstream_ready(m, hx);
}

static void up_connected(struct mitm *m, struct hx *hx)
{
	int r;

	if (hx->https) {
		if ((r = tls_client_start(m, hx)) < 0) {
			up_failed(m, hx, 502, "upstream TLS set-up failed: %s", strerror(-r));
			return;
		}
		hx->up = UP_TLS;
		return;
	}
	hx->up = UP_READY;
	req_upstream_ready(m, hx);
}

int hx_upstream_start(struct mitm *m, struct hx *hx)
{
	int r;

	hx_upstream_close(hx);
	snprintf(hx->up_host, sizeof(hx->up_host), "%s", hx->tgt.host);
	hx->up_t0 = m->now_ms;
	if (!hx->no_pool && pool_take(m, hx))
		return 0;   /* an idle connection to the same place: no connect, no handshake */
	r = flow_connect(m, hx->f, &hx->tgt.dial);
	if (r < 0) {
		up_failed(m, hx, 502, "upstream connect failed: %s", strerror(-r));
		return r;
	}
	hx->up = UP_CONNECTING;
	if (r == 1)
		up_connected(m, hx);
	return 0;
}

static void up_step(struct mitm *m, struct hx *hx, short urev)
{
	int err, r;

	if (hx->up == UP_CONNECTING && urev) {
		if ((err = flow_so_error(hx->f->ufd)))
			up_failed(m, hx, 502, "upstream connect failed: %s", strerror(err));
		else
			up_connected(m, hx);
	}
	if (hx->up == UP_TLS) {
		r = tls_client_step(m, hx);
		if (r > 0) {
			hx->up = UP_READY;
			req_upstream_ready(m, hx);
		} else if (r < 0) {
			up_failed(m, hx, 502, "%s", hx->up_err);
		}
	}
}

/* ---- the handler ---- */
static bool hx_start_common(struct mitm *m, struct mitm_flow *f, bool https)
{
	struct hx *hx = calloc(1, sizeof(*hx));

	if (!hx) {
		flow_end(m, f, SIDE_UPSTREAM);
		return false;
	}
	f->h = hx;
	hx->f = f;
	hx->https = https;
	hx->g = (struct ep){ .fdp = &f->gfd, .hs_done = true, .want_read = true };
	hx->u = (struct ep){ .fdp = &f->ufd, .hs_done = true, .want_read = true };
	req_init(hx);
	resp_init(hx);
	hx->stage = https ? ST_TLS_HELLO : ST_HTTP;
	hx->tx = TX_IDLE;
	hx->t0 = mitm_clock_ms();
	return true;
}

static bool http_start(struct mitm *m, struct mitm_flow *f)
{
	return hx_start_common(m, f, false);
}

static bool https_start(struct mitm *m, struct mitm_flow *f)
{
	return hx_start_common(m, f, true);
}

static short hx_guest_events(const struct mitm_flow *f)
{
	return ep_events(&hx_of(f)->g);
}

static short hx_upstream_events(const struct mitm_flow *f)
{
	const struct hx *hx = hx_of(f);

	if (hx->up == UP_CONNECTING)
		return POLLOUT;
	if (hx->up == UP_TLS || hx->up == UP_READY)
		return ep_events(&hx->u);
	return 0;
}

/* Whether the flow is finished (after this round's I/O). */
static bool hx_finished(struct mitm *m, struct hx *hx, enum side *side)
{
	*side = SIDE_NONE;
	if (hx->fatal) {
		*side = SIDE_UPSTREAM;
		return true;
	}
	if (hx->g.err) {
		*side = SIDE_GUEST;
		return true;
	}
	if (hx->h2) {
		bool failed;
		bool done = h2_finished(hx, &failed);

		*side = failed ? SIDE_UPSTREAM : SIDE_NONE;
		return done;
	}
	if (hx->tx == TX_TUNNEL)
		return hx->g.shut && hx->u.shut && !ep_out_pending(&hx->g) && !ep_out_pending(&hx->u);
	if (hx->tx == TX_CLOSING)
		return hx->g.shut && (hx->g.eof || m->now_ms - hx->t0 > LINGER_MS);
	if (!hx->g.eof || hx->g.in.len)
		return false;
	/* the guest closed: fine between exchanges, a cut request otherwise */
	if (hx->tx == TX_IDLE)
		return !ep_out_pending(&hx->g);
	if (hx->tx == TX_SEND && hx->x.req_done)
		return false;   /* a half-close after the request: answer it first */
	*side = hx->tx == TX_SEND ? SIDE_GUEST : SIDE_NONE;
	return true;
}

static bool hx_advance(struct mitm *m, struct hx *hx)
{
	struct mitm_flow *f = hx->f;
	enum side side;

	for (int i = 0; i < ADVANCE_ROUNDS; i++) {
		bool p = false;

		if (hx->stage != ST_HTTP) {
			int r = tlsflow_step(m, hx);

			if (r < 0) {
				flow_end(m, f, SIDE_NONE);
				return false;
			}
			p |= r > 0;
		}
		if (hx->up == UP_TLS)
			up_step(m, hx, 0);
		if (hx->up == UP_READY)
			p |= ep_flush(&hx->u) == EP_PROGRESS;
		if (hx->stage == ST_HTTP) {
			p |= ep_flush(&hx->g) == EP_PROGRESS;
			p |= ep_read(&hx->g) == EP_PROGRESS;
		}
		if (hx->up == UP_READY)
			p |= ep_read(&hx->u) == EP_PROGRESS;
		if (hx->stage == ST_HTTP) {
			if (hx->h2)
				p |= h2_pump(m, hx);
			else if (hx->tx == TX_TUNNEL)
				p |= tunnel_pump(hx);
			else if (hx->tx == TX_CLOSING)
				iob_free(&hx->g.in);   /* lingering: what the guest still sends is dropped */
			else {
				p |= req_pump(m, hx);
				p |= resp_pump(m, hx);
			}
		}
		if (p)
			f->last_ms = m->now_ms;
		if (hx_finished(m, hx, &side)) {
			flow_end(m, f, side);
			return false;
		}
		if (!p)
			break;
	}
	return true;
}

static bool hx_step(struct mitm *m, struct mitm_flow *f, short grev, short urev)
{
	struct hx *hx = hx_of(f);

	if (grev & (POLLIN | POLLHUP | POLLERR))
		hx->g.rd_ready = true;
	if (urev & (POLLIN | POLLHUP | POLLERR))
		hx->u.rd_ready = true;
	if (urev && (hx->up == UP_CONNECTING || hx->up == UP_TLS))
		up_step(m, hx, urev);
	return hx_advance(m, hx);
}

static bool hx_job_done(struct mitm *m, struct mitm_flow *f, struct job *j)
{
	struct hx *hx = hx_of(f);

	if (hx->job != j) {
		job_free(j);
		return true;
	}
	hx->job = NULL;
	if (j->kind == JOB_RESOLVE && hx->stage != ST_HTTP)
		tlsflow_resolved(m, hx, j);
	else if (j->kind == JOB_RESOLVE)
		req_resolved(m, hx, j);
	else
		rules_hook_done(m, hx, j);
	job_free(j);
	return hx_advance(m, hx);
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t hx_deadline(const struct mitm *m, const struct mitm_flow *f)
{
	const struct hx *hx = hx_of(f);
	const struct mitm_intercept *c = &m->icpt->cfg;
	int64_t d = INT64_MAX;

	if (hx->up == UP_CONNECTING || hx->up == UP_TLS)
		d = hx->up_t0 + m->cfg.connect_timeout_ms;
	if (hx->wait == WAIT_RESOLVE)
		d = min64(d, hx->t0 + RESOLVE_TIMEOUT_MS);
	if (hx->stage != ST_HTTP)
		return min64(d, hx->t0 + c->head_timeout_ms);
	if (hx->h2)
		return min64(d, f->last_ms + (h2_idle(hx) ? c->keepalive_ms : m->cfg.idle_timeout_ms));
	switch (hx->tx) {
	case TX_IDLE:
		return min64(d, f->last_ms + c->keepalive_ms);
	case TX_HEAD:
		return min64(d, hx->t0 + c->head_timeout_ms);
	case TX_SEND:
		if (hx->rs == RS_HEAD && hx->x.req_done && hx->up == UP_READY)
			return min64(d, hx->t0 + c->response_timeout_ms);
		return min64(d, f->last_ms + m->cfg.idle_timeout_ms);
	case TX_TUNNEL:
		return min64(d, f->last_ms + m->cfg.idle_timeout_ms);
	case TX_CLOSING:
		return min64(d, hx->t0 + LINGER_MS);
	default:
		return d;
	}
}

static bool hx_expire(struct mitm *m, struct mitm_flow *f)
{
	struct hx *hx = hx_of(f);

	if ((hx->up == UP_CONNECTING || hx->up == UP_TLS) &&
	    m->now_ms >= hx->up_t0 + m->cfg.connect_timeout_ms) {
		m->st.connect_timeout++;
		up_failed(m, hx, 504, "%s", "upstream connect timed out");
		return hx_advance(m, hx);
	}
	if (hx->wait == WAIT_RESOLVE && m->now_ms >= hx->t0 + RESOLVE_TIMEOUT_MS) {
		worker_cancel(m->icpt->worker, hx->job);
		hx->job = NULL;
		hx->wait = WAIT_NONE;
		hx_local_reply(m, hx, 504, "upstream name lookup timed out\n", false, "name lookup timed out");
		return hx_advance(m, hx);
	}
	if (hx->stage == ST_HTTP && hx->tx == TX_SEND && hx->rs == RS_HEAD && hx->x.req_done &&
	    hx->up == UP_READY) {
		hx_local_reply(m, hx, 504, "upstream did not answer in time\n", false, "upstream timed out");
		return hx_advance(m, hx);
	}
	if (hx->tx != TX_CLOSING)
		m->st.reaped_idle++;
	flow_end(m, f, SIDE_NONE);
	return false;
}

static void hx_release(struct mitm *m, struct mitm_flow *f)
{
	struct hx *hx = hx_of(f);

	if (!hx)
		return;
	if (hx->job)
		worker_cancel(m->icpt->worker, hx->job);
	pool_park(m, hx);   /* an idle keep-alive upstream serves the next guest connection */
	h2_free(hx->h2);
	hx_xchg_clear(hx);
	h1_free(&hx->req);
	h1_free(&hx->resp);
	ep_free(&hx->g);
	ep_free(&hx->u);
	tlsflow_release(hx);
	free(hx);
	f->h = NULL;
}

const struct flow_ops http_ops = {
	.name = "http",
	.start = http_start,
	.guest_events = hx_guest_events,
	.upstream_events = hx_upstream_events,
	.step = hx_step,
	.deadline = hx_deadline,
	.expire = hx_expire,
	.release = hx_release,
	.job_done = hx_job_done,
};

const struct flow_ops https_ops = {
	.name = "https",
	.start = https_start,
	.guest_events = hx_guest_events,
	.upstream_events = hx_upstream_events,
	.step = hx_step,
	.deadline = hx_deadline,
	.expire = hx_expire,
	.release = hx_release,
	.job_done = hx_job_done,
};
