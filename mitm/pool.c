/* mitm/pool.c - idle upstream connections kept for the next guest connection.
 *
 * Many clients open a new connection per request (or per command: curl, git, package
 * managers). When a guest connection ends and its upstream connection is idle and keep-alive,
 * the upstream (socket and TLS session) is parked here, keyed by everything that made it:
 * the policy host, the name sent and verified, the address dialed, the port, plain or TLS. A
 * new flow of the same VM to the same key takes it instead of a TCP connect and a TLS
 * handshake. Bounded (POOL_MAX per VM, the oldest goes first), short-lived (POOL_IDLE_MS), and
 * an entry the upstream talks on or closes is dropped at once. A request sent on a reused
 * connection that dies before any response byte is sent again on a fresh one (proxy_resp.c),
 * so the race with an upstream closing an idle connection costs a retry, never an error.
 * The policy is still checked per request: a parked connection only saves the handshake.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mitm/proxy.h"
#include "mitm/tls.h"

static void drop(struct mitm *m, unsigned i)
{
	struct intercept *ic = m->icpt;
	struct pooled *p = &ic->pool[i];

	if (p->tls)
		gnutls_deinit(p->tls);
	if (p->fd >= 0)
		close(p->fd);
	sockbuf_release(m, p->sockbuf);
	ic->pool[i] = ic->pool[--ic->n_pool];
}

/* Parked connections are HTTP/1.1. One opened without offering h2 must not serve a guest that
 * offers h2: its host may speak h2, and the guest would lose it. */
static bool same(const struct pooled *p, const struct hx *hx)
{
	return p->https == hx->https && p->port == hx->tgt.port && (!hx->want_h2_up || p->offered_h2) &&
	       p->dial.sin_addr.s_addr == hx->tgt.dial.sin_addr.s_addr &&
	       p->dial.sin_port == hx->tgt.dial.sin_port && !strcmp(p->host, hx->tgt.host) &&
	       !strcmp(p->sni, hx->upstream_sni);
}

void pool_park(struct mitm *m, struct hx *hx)
{
	struct intercept *ic = m->icpt;
	struct pooled *p;

	if (!hx->u_reusable || hx->up != UP_READY || hx->f->ufd < 0 || hx->u.in.len || hx->u.pre.len ||
	    ep_out_pending(&hx->u) || hx->u.eof || hx->u.err || hx->u.close_after)
		return;
	if (ic->n_pool == POOL_MAX)
		drop(m, 0);   /* the oldest (entries are appended) */
	{
		struct linger l = { 0 };

		/* flow_end may have asked for a reset on close: this socket is not closing */
		(void)setsockopt(hx->f->ufd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	p = &ic->pool[ic->n_pool++];
	*p = (struct pooled){ .fd = hx->f->ufd, .tls = hx->u.tls, .https = hx->https,
			      .offered_h2 = hx->u_offered_h2, .port = hx->tgt.port, .dial = hx->tgt.dial,
			      .sockbuf = hx->f->sockbuf, .since_ms = m->now_ms };
	memcpy(p->host, hx->tgt.host, sizeof(p->host));
	memcpy(p->sni, hx->upstream_sni, sizeof(p->sni));
	hx->f->ufd = -1;
	hx->f->sockbuf = 0;
	hx->u.tls = NULL;
	hx->up = UP_NONE;
	m->st.upstream_parked++;
}

bool pool_take(struct mitm *m, struct hx *hx)
{
	struct intercept *ic = m->icpt;

	for (unsigned i = ic->n_pool; i-- > 0;) {
		struct pooled *p = &ic->pool[i];

		if (!same(p, hx))
			continue;
		hx->f->ufd = p->fd;
		hx->f->sockbuf = p->sockbuf;
		hx->u.tls = p->tls;
		hx->u_offered_h2 = p->offered_h2;
		hx->u.hs_done = true;
		if (p->tls)
			tls_rebind(&hx->u);
		p->fd = -1;
		p->tls = NULL;
		p->sockbuf = 0;
		drop(m, i);
		hx->up = UP_READY;
		hx->u_from_pool = true;
		m->st.upstream_reused++;
		return true;
	}
	return false;
}

void pool_poll_fill(struct mitm *m, struct pollfd *pfds, size_t *k, size_t cap, int64_t *next)
{
	struct intercept *ic = m->icpt;

	for (unsigned i = 0; ic && i < ic->n_pool; i++) {
		ic->pool[i].idx = *k < cap ? (int32_t)*k : -1;
		if (ic->pool[i].idx >= 0)
			pfds[(*k)++] = (struct pollfd){ .fd = ic->pool[i].fd, .events = POLLIN };
		if (ic->pool[i].since_ms + POOL_IDLE_MS < *next)
			*next = ic->pool[i].since_ms + POOL_IDLE_MS;
	}
}

void pool_poll_done(struct mitm *m, const struct pollfd *fds, size_t n)
{
	struct intercept *ic = m->icpt;

	/* backwards: drop() moves the last entry into the freed slot */
	for (unsigned i = ic ? ic->n_pool : 0; i-- > 0;) {
		struct pooled *p = &ic->pool[i];
		bool spoke = p->idx >= 0 && (size_t)p->idx < n && fds[p->idx].fd == p->fd && fds[p->idx].revents;

		/* an idle upstream that speaks (or closes) is not idle any more */
		if (spoke || p->since_ms + POOL_IDLE_MS <= m->now_ms)
			drop(m, i);
	}
}

void pool_free_all(struct mitm *m)
{
	while (m->icpt->n_pool)
		drop(m, m->icpt->n_pool - 1);
}
