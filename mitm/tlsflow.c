/* mitm/tlsflow.c - the stages of a TCP/443 flow before it speaks HTTP.
 *
 *   ST_TLS_HELLO      read the ClientHello (raw records, nothing answered yet); its SNI is
 *                     the name the policy checks (no SNI: the address the guest dialed)
 *   ST_TLS_HANDSHAKE  our handshake with the guest, with a leaf for that name; meanwhile the
 *                     decision (maybe a host-side lookup) and, when allowed, the upstream's
 *                     connect and TLS handshake run in parallel
 *   ST_TLS_DECIDE     handshake done, the decision not yet
 *   ST_HTTP           the HTTP proxy (proxy*.c) takes over
 * A refused name still gets its handshake, then the connection is closed (close_notify, FIN):
 * the guest's TLS stack reports a closed connection, not a certificate error, and the event
 * says why. The upstream's own failure (refused, bad certificate) is kept and answered as a
 * 502 with the reason to the first request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "mitm/clienthello.h"
#include "mitm/h2.h"
#include "mitm/proxy.h"
#include "mitm/tls.h"

static void go_http(struct mitm *m, struct hx *hx)
{
	hx->stage = ST_HTTP;
	hx->g.want_read = true;
	hx->t0 = m->now_ms;
	if (hx->denied) {
		hx->tx = TX_CLOSING;
		hx->g.close_after = true;
	}
}

static void deny(struct mitm *m, struct hx *hx, const char *reason)
{
	hx->denied = true;
	hx->deny_reason = reason;
	hx_emit(m, hx, true, reason);
	if (hx->stage == ST_TLS_DECIDE)
		go_http(m, hx);
}

static void allow(struct mitm *m, struct hx *hx)
{
	hx_upstream_start(m, hx);   /* a failure is kept for the first request (502) */
	if (hx->stage == ST_TLS_DECIDE)
		go_http(m, hx);
}

/* The policy for the ClientHello's name. */
static int decide(struct mitm *m, struct hx *hx, const struct clienthello *ch)
{
	enum verdict v = target_decide(m, hx->f, ch->sni[0] ? hx->sni : NULL, &hx->tgt);
	struct job *j;

	if (v == V_DENY) {
		deny(m, hx, hx->tgt.reason);
		return 0;
	}
	if (v == V_ALLOW) {
		allow(m, hx);
		return 0;
	}
	if (!(j = calloc(1, sizeof(*j))))
		return -ENOMEM;
	j->kind = JOB_RESOLVE;
	snprintf(j->name, sizeof(j->name), "%s", hx->tgt.host);
	if (hx_submit(m, hx, j, WAIT_RESOLVE) < 0) {
		snprintf(hx->up_err, sizeof(hx->up_err), "name lookups are overloaded");
		hx->up_status = 502;
		hx->up = UP_FAILED;
	}
	return 0;
}

static int hello_step(struct mitm *m, struct hx *hx)
{
	struct ep *g = &hx->g;
	struct clienthello ch;
	uint8_t *to = iob_space(&g->pre, 16384);
	ssize_t n;

	if (!to)
		return -1;
	n = recv(*g->fdp, to, 16384, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	g->pre.len += (size_t)n;
	switch (clienthello_parse(g->pre.d + g->pre.off, g->pre.len, &ch)) {
	case CH_MORE:
		return g->pre.len < CH_MAX_BYTES + 5 ? 1 : -1;
	case CH_BAD:
		m->st.tls_guest_failed++;
		ml_debug("mitm: TCP/443 flow without a usable TLS ClientHello: closed");
		return -1;
	case CH_OK:
		break;
	}
	if (ch.sni[0] && host_normalize(ch.sni, hx->sni, sizeof(hx->sni)))
		snprintf(hx->upstream_sni, sizeof(hx->upstream_sni), "%s", hx->sni);
	else
		inet_ntop(AF_INET, &hx->f->odst.sin_addr, hx->sni, sizeof(hx->sni));
	/* h2 to the guest only if the upstream speaks it too: ask the upstream first. (Hook
	 * rules run on the HTTP/1 path only: with rules, http/1.1.) */
	hx->want_h2_up = ch.alpn_h2 && !m->icpt->rules;
	if (decide(m, hx, &ch) < 0)
		return -1;
	if (hx->want_h2_up && !hx->denied) {
		hx->stage = ST_TLS_UPFIRST;
		hx->g.want_read = false;   /* the guest waits for our ServerHello anyway */
		return 1;
	}
	if (tls_server_start(m, hx, false) < 0)
		return -1;
	hx->stage = ST_TLS_HANDSHAKE;
	return 1;
}

/* The upstream's handshake is done (or failed, or the name was refused): ours may start, with
 * h2 on offer if the upstream chose it. */
static int upfirst_step(struct mitm *m, struct hx *hx)
{
	bool h2;

	if (!hx->denied && hx->up != UP_READY && hx->up != UP_FAILED)
		return 0;
	h2 = !hx->denied && hx->up == UP_READY && hx->u.tls && tls_alpn_is_h2(hx->u.tls);
	if (tls_server_start(m, hx, h2) < 0)
		return -1;
	hx->stage = ST_TLS_HANDSHAKE;
	return 1;
}

static int handshake_step(struct mitm *m, struct hx *hx)
{
	int r = tls_server_step(hx);

	if (r < 0) {
		m->st.tls_guest_failed++;
		return -1;
	}
	if (!r)
		return 0;
	m->st.tls_handshakes++;
	m->st.tls_guest_resumed += gnutls_session_is_resumed(hx->g.tls) != 0;
	if (tls_alpn_is_h2(hx->g.tls) && h2_start(m, hx) < 0)
		return -1;
	if (hx->wait == WAIT_RESOLVE) {
		hx->stage = ST_TLS_DECIDE;
		hx->g.want_read = false;   /* the request waits in the socket until we know */
	} else {
		go_http(m, hx);
	}
	return 1;
}

int tlsflow_step(struct mitm *m, struct hx *hx)
{
	switch (hx->stage) {
	case ST_TLS_HELLO:
		return hello_step(m, hx);
	case ST_TLS_UPFIRST:
		return upfirst_step(m, hx);
	case ST_TLS_HANDSHAKE:
		return handshake_step(m, hx);
	default:
		return 0;
	}
}

void tlsflow_resolved(struct mitm *m, struct hx *hx, struct job *j)
{
	hx->wait = WAIT_NONE;
	if (j->err) {
		snprintf(hx->up_err, sizeof(hx->up_err), "cannot resolve %s", hx->tgt.host);
		hx->up_status = 502;
		hx->up = UP_FAILED;
		if (hx->stage == ST_TLS_DECIDE)
			go_http(m, hx);
		return;
	}
	if (target_pick(m, &hx->tgt, j->addrs, j->n_addrs) == V_DENY)
		deny(m, hx, hx->tgt.reason);
	else
		allow(m, hx);
}

void tlsflow_release(struct hx *hx)
{
	(void)hx;   /* the sessions belong to the ends (ep_free) */
}
