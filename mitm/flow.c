/* mitm/flow.c - the flow table: one entry per guest TCP flow, whatever handles it.
 *
 * mitm_flow() picks a handler (struct flow_ops) for a new flow and adds it here; the poll
 * array, the timers and the two ends of a flow (guest fd, upstream socket) are generic, so a
 * handler is only its state machine. Each flow remembers the index of its two pollfds, so
 * matching revents to flows after poll() is O(n).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "mitm/intercept.h"

static void flow_destroy(struct mitm *m, struct mitm_flow *f)
{
	if (f->ops->release)
		f->ops->release(m, f);
	if (f->gfd >= 0)
		close(f->gfd);
	if (f->ufd >= 0)
		close(f->ufd);
	sockbuf_release(m, f->sockbuf);
	m->flows[f->index] = NULL;
	free(f);
}

void flow_reset_on_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	/* If this fails the peer gets a FIN, which still ends the connection. */
	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

static void abort_guest(struct mitm *m, int gfd, const struct sockaddr_in *gsrc,
			const struct sockaddr_in *odst)
{
	if (m->cfg.abort_flow)
		m->cfg.abort_flow(m->cfg.arg, gsrc, odst);
	close(gfd);
}

void flow_end(struct mitm *m, struct mitm_flow *f, enum side failed)
{
	if (failed == SIDE_UPSTREAM) {
		/* The upstream failed (or we did): the guest gets RST, the upstream too. */
		flow_reset_on_close(f->ufd);
		abort_guest(m, f->gfd, &f->gsrc, &f->odst);
		f->gfd = -1;
	} else if (failed == SIDE_GUEST) {
		flow_reset_on_close(f->ufd);  /* the guest reset: so does its upstream connection */
	}
	flow_destroy(m, f);
}

int flow_so_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

void (*mitm_dial_hook)(struct sockaddr_in *up);

int flow_connect(struct mitm *m, struct mitm_flow *f, const struct sockaddr_in *up)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in to = *up;
	int one = 1, r = 1;
	uint32_t charged;

	if (fd < 0)
		return -errno;
	if (mitm_dial_hook)
		mitm_dial_hook(&to);
	up = &to;
	/* The guest's stack already coalesces; delaying again here only adds latency. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	/* the socket's share of the VM's upstream-buffer budget (sockbuf.c), set before connect */
	charged = sockbuf_apply(m, fd);
	if (connect(fd, (const struct sockaddr *)up, sizeof(*up)) < 0) {
		if (errno != EINPROGRESS) {
			sockbuf_release(m, charged);
			return -errno;
		}
		r = 0;
	}
	if (f->ufd >= 0)
		close(f->ufd);
	sockbuf_release(m, f->sockbuf);
	f->sockbuf = charged;
	f->ufd = steal_fd(&fd);
	return r;
}

struct mitm_flow *flow_by_id(struct mitm *m, uint64_t id)
{
	for (size_t i = 0; i < m->n_flows; i++)
		if (m->flows[i] && m->flows[i]->id == id)
			return m->flows[i];
	return NULL;
}

static int reserve(void **arr, size_t *cap, size_t want, size_t elem)
{
	size_t n = *cap ? *cap : 16;
	void *p;

	if (want <= *cap)
		return 0;
	while (n < want)
		n *= 2;
	p = realloc(*arr, n * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return -errno;
	return 0;
}

static const struct flow_ops *pick_handler(struct mitm *m, const struct sockaddr_in *dst)
{
	const struct flow_ops *ops = intercept_handler(m, dst);

	return ops ? ops : &relay_ops;
}

void mitm_flow(struct mitm *m, int fd, const struct sockaddr_in *guest_src,
	       const struct sockaddr_in *orig_dst)
{
	struct mitm_flow *f;

	if (dnsflow_wants(m, orig_dst)) {
		dnsflow_start(m, fd, guest_src, orig_dst);  /* DNS questions are policy too */
		return;
	}
	if (m->n_flows >= m->cfg.max_flows) {
		m->st.dropped_full++;
		abort_guest(m, fd, guest_src, orig_dst);
		return;
	}
	/* Not m->pfds: the caller may still hold it (this can run between fill and done). */
	if (reserve((void **)&m->flows, &m->cap_flows, m->n_flows + 1, sizeof(*m->flows)) < 0 ||
	    !(f = calloc(1, sizeof(*f)))) {
		ml_warn("mitm: out of memory for a new flow");
		abort_guest(m, fd, guest_src, orig_dst);
		return;
	}
	if (set_nonblock(fd) < 0) {
		free(f);
		abort_guest(m, fd, guest_src, orig_dst);
		return;
	}
	f->gfd = fd;
	f->ufd = -1;
	f->ops = pick_handler(m, orig_dst);
	f->gidx = f->uidx = -1;
	f->gsrc = *guest_src;
	f->odst = *orig_dst;
	f->last_ms = mitm_clock_ms();
	f->id = ++m->next_flow_id;
	f->index = (uint32_t)m->n_flows;
	m->flows[m->n_flows++] = f;
	m->st.flows_total++;
	(void)f->ops->start(m, f);
}

static int32_t add_pollfd(struct mitm *m, size_t *k, int fd, short events)
{
	if (!events || fd < 0 || *k >= m->cap_pfds)
		return -1;
	m->pfds[*k] = (struct pollfd){ .fd = fd, .events = events };
	return (int32_t)(*k)++;
}

void mitm_poll_fill(struct mitm *m, struct pollfd **fds, size_t *n, int *timeout_ms)
{
	int64_t now = mitm_clock_ms(), next = INT64_MAX;
	size_t k = 0;

	/* If this fails, the flows that do not fit wait a round (only their timers run). */
	if (reserve((void **)&m->pfds, &m->cap_pfds, 2 * m->n_flows + 1 + POOL_MAX, sizeof(*m->pfds)) < 0)
		ml_warn("mitm: out of memory for the poll array");
	for (size_t i = 0; i < m->n_flows; i++) {
		struct mitm_flow *f = m->flows[i];
		int64_t d = f->ops->deadline(m, f);

		f->gidx = add_pollfd(m, &k, f->gfd, f->ops->guest_events(f));
		f->uidx = add_pollfd(m, &k, f->ufd, f->ops->upstream_events(f));
		if (d < next)
			next = d;
	}
	m->extra_idx = add_pollfd(m, &k, intercept_poll_fd(m), POLLIN);
	pool_poll_fill(m, m->pfds, &k, m->cap_pfds, &next);
	if (next != INT64_MAX) {
		int64_t wait = next > now ? next - now : 0;

		if (wait > INT32_MAX)
			wait = INT32_MAX;
		if (*timeout_ms < 0 || wait < *timeout_ms)
			*timeout_ms = (int)wait;
	}
	*fds = m->pfds;
	*n = k;
}

static short revents_of(const struct pollfd *fds, size_t n, int32_t idx, int fd)
{
	if (idx < 0 || (size_t)idx >= n || fds[idx].fd != fd)
		return 0;
	return fds[idx].revents;
}

static void compact(struct mitm *m)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n_flows; i++)
		if (m->flows[i]) {
			m->flows[k] = m->flows[i];
			m->flows[k]->index = (uint32_t)k;
			k++;
		}
	m->n_flows = k;
}

void mitm_poll_done(struct mitm *m, const struct pollfd *fds, size_t n)
{
	size_t count = m->n_flows;

	m->now_ms = mitm_clock_ms();
	/* Finished jobs (name lookups, hook callbacks) move their flows first. */
	if (revents_of(fds, n, m->extra_idx, intercept_poll_fd(m)))
		intercept_jobs_done(m);
	pool_poll_done(m, fds, n);
	/* Flows added by a callback during this loop (index >= count) wait for the next round. */
	for (size_t i = 0; i < count; i++) {
		struct mitm_flow *f = m->flows[i];
		short grev, urev;

		if (!f)
			continue;
		grev = revents_of(fds, n, f->gidx, f->gfd);
		urev = revents_of(fds, n, f->uidx, f->ufd);
		f->gidx = f->uidx = -1;
		if ((grev || urev) && !f->ops->step(m, f, grev, urev))
			continue;
		if (f->ops->deadline(m, f) <= m->now_ms)
			(void)f->ops->expire(m, f);
	}
	compact(m);
	intercept_round_end(m);
}

void flows_free_all(struct mitm *m)
{
	for (size_t i = 0; i < m->n_flows; i++)
		if (m->flows[i])
			flow_destroy(m, m->flows[i]);
	free(m->flows);
	free(m->pfds);
	m->flows = NULL;
	m->pfds = NULL;
	m->n_flows = m->cap_flows = m->cap_pfds = 0;
}
