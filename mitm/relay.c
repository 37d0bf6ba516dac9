/* mitm/relay.c - the plain relay: one upstream TCP connection per guest flow, bytes spliced
 * both ways.
 *
 * Memory is what bounds a sandbox with a thousand idle connections, so a flow is only its
 * struct until bytes have to wait: a read goes into one shared scratch buffer and is sent on
 * at once; only what the sink does not take is copied into that direction's own buffer
 * (MITM_BUF_CAP), which is freed again as soon as it drains. A full buffer stops reads from
 * its source, so a slow reader on either side stalls the writer on the other (TCP windows do
 * the rest). FIN is passed on per direction after the buffer drains (half-close).
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
#include "mitm/internal.h"

/* Which end failed: the guest's (it already reset, nothing to tell it) or the upstream's (the
 * guest must see a reset). */
enum side { SIDE_NONE, SIDE_GUEST, SIDE_UPSTREAM };

struct dir {
	struct dirbuf *b;
	int src, sink;
	enum side src_side, sink_side;
	uint64_t *bytes;
};

static struct dir dir_up(struct mitm *m, struct mitm_flow *f)
{
	return (struct dir){ &f->up, f->gfd, f->ufd, SIDE_GUEST, SIDE_UPSTREAM, &m->st.bytes_up };
}

static struct dir dir_down(struct mitm *m, struct mitm_flow *f)
{
	return (struct dir){ &f->down, f->ufd, f->gfd, SIDE_UPSTREAM, SIDE_GUEST, &m->st.bytes_down };
}

static void dirbuf_drop(struct mitm *m, struct dirbuf *b)
{
	if (b->data)
		m->st.buffers_in_use--;
	free(b->data);
	b->data = NULL;
	b->off = b->len = 0;
}

static bool can_read(const struct dirbuf *b)
{
	return !b->eof && b->len < MITM_BUF_CAP;
}

static void flow_destroy(struct mitm *m, struct mitm_flow *f)
{
	if (f->gfd >= 0)
		close(f->gfd);
	if (f->ufd >= 0)
		close(f->ufd);
	dirbuf_drop(m, &f->up);
	dirbuf_drop(m, &f->down);
	sockbuf_release(m, f->sockbuf);
	m->flows[f->index] = NULL;
	free(f);
}

/* Best effort: closing with SO_LINGER 0 sends RST instead of FIN. If it fails the peer gets a
 * FIN, which still ends the connection. */
static void reset_on_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

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

/* The upstream failed (or we did): the guest gets RST, the upstream too if it is still there. */
static void flow_abort(struct mitm *m, struct mitm_flow *f)
{
	reset_on_close(f->ufd);
	abort_guest(m, f->gfd, &f->gsrc, &f->odst);
	f->gfd = -1;
	flow_destroy(m, f);
}

static void flow_end(struct mitm *m, struct mitm_flow *f, enum side failed)
{
	if (failed == SIDE_UPSTREAM) {
		flow_abort(m, f);
		return;
	}
	if (failed == SIDE_GUEST)
		reset_on_close(f->ufd);  /* the guest reset: so does its upstream connection */
	flow_destroy(m, f);
}

static int so_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static enum side flush(struct mitm *m, struct mitm_flow *f, const struct dir *d)
{
	struct dirbuf *b = d->b;

	while (b->len) {
		ssize_t w = send(d->sink, b->data + b->off, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return SIDE_NONE;
		if (w < 0)
			return d->sink_side;
		b->off += (uint32_t)w;
		b->len -= (uint32_t)w;
		f->last_ms = m->now_ms;
	}
	dirbuf_drop(m, b);
	return SIDE_NONE;
}

/* len bytes sit in m->scratch: send what the sink takes, keep the rest in the flow's buffer. */
static enum side forward_scratch(struct mitm *m, const struct dir *d, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = send(d->sink, m->scratch + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0)
			return d->sink_side;
		done += (size_t)w;
	}
	if (done == len)
		return SIDE_NONE;
	d->b->data = malloc(MITM_BUF_CAP);
	if (!d->b->data) {
		ml_warn("mitm: out of memory buffering a flow; resetting it");
		return SIDE_UPSTREAM;
	}
	m->st.buffers_in_use++;
	memcpy(d->b->data, m->scratch + done, len - done);
	d->b->off = 0;
	d->b->len = (uint32_t)(len - done);
	return SIDE_NONE;
}

static enum side fill(struct mitm *m, struct mitm_flow *f, const struct dir *d)
{
	struct dirbuf *b = d->b;
	uint8_t *to = m->scratch;
	size_t room = MITM_BUF_CAP;
	ssize_t r;

	if (b->data) {
		if (b->off + b->len == MITM_BUF_CAP) {
			memmove(b->data, b->data + b->off, b->len);
			b->off = 0;
		}
		to = b->data + b->off + b->len;
		room = MITM_BUF_CAP - b->off - b->len;
	}
	r = recv(d->src, to, room, MSG_DONTWAIT);
	if (r == 0) {
		b->eof = true;
		return SIDE_NONE;
	}
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? SIDE_NONE : d->src_side;
	*d->bytes += (uint64_t)r;
	f->last_ms = m->now_ms;
	if (!b->data)
		return forward_scratch(m, d, (size_t)r);
	b->len += (uint32_t)r;
	return flush(m, f, d);
}

/* The source's FIN goes on once everything before it has. */
static void pass_fin(const struct dir *d)
{
	if (d->b->eof && !d->b->len && !d->b->shut) {
		d->b->shut = true;
		/* Fails only if the sink is already reset; its next read or write reports that. */
		(void)shutdown(d->sink, SHUT_WR);
	}
}

#define EV_IN (POLLIN | POLLHUP | POLLERR)
#define EV_OUT (POLLOUT | POLLHUP | POLLERR)

static enum side pump(struct mitm *m, struct mitm_flow *f, short grev, short urev)
{
	struct dir up = dir_up(m, f), down = dir_down(m, f);
	enum side s = SIDE_NONE;

	if ((urev & EV_OUT) && (s = flush(m, f, &up)))
		return s;
	if ((grev & EV_OUT) && (s = flush(m, f, &down)))
		return s;
	if ((grev & EV_IN) && can_read(&f->up) && (s = fill(m, f, &up)))
		return s;
	if ((urev & EV_IN) && can_read(&f->down) && (s = fill(m, f, &down)))
		return s;
	pass_fin(&up);
	pass_fin(&down);
	return SIDE_NONE;
}

/* Returns false if the flow ended. */
static bool flow_step(struct mitm *m, struct mitm_flow *f, short grev, short urev)
{
	enum side s;

	if (f->state == FLOW_CONNECTING) {
		int err;

		if (!urev)
			return true;
		if ((err = so_error(f->ufd))) {
			ml_debug("mitm: connect to %s:%u: %s", inet_ntoa(f->odst.sin_addr),
				 ntohs(f->odst.sin_port), strerror(err));
			m->st.connect_failed++;
			flow_abort(m, f);
			return false;
		}
		f->state = FLOW_OPEN;
		f->last_ms = m->now_ms;
		grev |= POLLIN;  /* the guest may have written while we connected */
	}
	if ((urev & POLLERR) && so_error(f->ufd))
		s = SIDE_UPSTREAM;
	else if ((grev & POLLERR) && so_error(f->gfd))
		s = SIDE_GUEST;
	else
		s = pump(m, f, grev, urev);
	if (s || (f->up.shut && f->down.shut)) {
		flow_end(m, f, s);
		return false;
	}
	return true;
}

static int64_t flow_deadline(const struct mitm *m, const struct mitm_flow *f)
{
	if (f->state == FLOW_CONNECTING)
		return f->last_ms + m->cfg.connect_timeout_ms;
	if (f->up.eof || f->down.eof)
		return f->last_ms + m->cfg.half_close_ms;
	return f->last_ms + m->cfg.idle_timeout_ms;
}

static void flow_expire(struct mitm *m, struct mitm_flow *f)
{
	if (f->state == FLOW_CONNECTING) {
		m->st.connect_timeout++;
		flow_abort(m, f);
		return;
	}
	m->st.reaped_idle++;
	flow_destroy(m, f);
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

/* Returns 1 if connected at once, 0 if in progress, or -errno. *charged: the socket's share
 * of the upstream-buffer budget (sockbuf.c), set before connect. */
static int start_connect(struct mitm *m, const struct sockaddr_in *up, int *fdp, uint32_t *charged)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, r = 1;

	if (fd < 0)
		return -errno;
	/* The guest's stack already coalesces; delaying again here only adds latency. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	*charged = sockbuf_apply(m, fd);
	if (connect(fd, (const struct sockaddr *)up, sizeof(*up)) < 0) {
		if (errno != EINPROGRESS) {
			sockbuf_release(m, *charged);
			return -errno;
		}
		r = 0;
	}
	*fdp = steal_fd(&fd);
	return r;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return -errno;
	return 0;
}

void mitm_flow(struct mitm *m, int fd, const struct sockaddr_in *guest_src,
	       const struct sockaddr_in *orig_dst)
{
	struct sockaddr_in up;
	struct mitm_flow *f;
	int r;

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
	policy_upstream(m, orig_dst, &up);
	f->ufd = -1;
	if ((r = set_nonblock(fd)) < 0 || (r = start_connect(m, &up, &f->ufd, &f->sockbuf)) < 0) {
		ml_debug("mitm: connect to %s:%u: %s", inet_ntoa(up.sin_addr), ntohs(up.sin_port),
			 strerror(-r));
		m->st.connect_failed++;
		free(f);
		abort_guest(m, fd, guest_src, orig_dst);
		return;
	}
	f->gfd = fd;
	f->state = r ? FLOW_OPEN : FLOW_CONNECTING;
	f->gidx = f->uidx = -1;
	f->gsrc = *guest_src;
	f->odst = *orig_dst;
	f->last_ms = mitm_clock_ms();
	f->index = (uint32_t)m->n_flows;
	m->flows[m->n_flows++] = f;
	m->st.flows_total++;
}

static short guest_events(const struct mitm_flow *f)
{
	if (f->state != FLOW_OPEN)
		return 0;
	return (short)((can_read(&f->up) ? POLLIN : 0) | (f->down.len ? POLLOUT : 0));
}

static short upstream_events(const struct mitm_flow *f)
{
	if (f->state != FLOW_OPEN)
		return POLLOUT;
	return (short)((can_read(&f->down) ? POLLIN : 0) | (f->up.len ? POLLOUT : 0));
}

static int32_t add_pollfd(struct mitm *m, size_t *k, int fd, short events)
{
	if (!events || *k >= m->cap_pfds)
		return -1;
	m->pfds[*k] = (struct pollfd){ .fd = fd, .events = events };
	return (int32_t)(*k)++;
}

void mitm_poll_fill(struct mitm *m, struct pollfd **fds, size_t *n, int *timeout_ms)
{
	int64_t now = mitm_clock_ms(), next = INT64_MAX;
	size_t k = 0;

	/* If this fails, the flows that do not fit wait a round (only their timers run). */
	if (reserve((void **)&m->pfds, &m->cap_pfds, 2 * m->n_flows, sizeof(*m->pfds)) < 0)
		ml_warn("mitm: out of memory for the poll array");
	for (size_t i = 0; i < m->n_flows; i++) {
		struct mitm_flow *f = m->flows[i];
		int64_t d = flow_deadline(m, f);

		f->gidx = add_pollfd(m, &k, f->gfd, guest_events(f));
		f->uidx = add_pollfd(m, &k, f->ufd, upstream_events(f));
		if (d < next)
			next = d;
	}
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
	/* Flows added by a callback during this loop (index >= count) wait for the next round. */
	for (size_t i = 0; i < count; i++) {
		struct mitm_flow *f = m->flows[i];
		short grev, urev;

		if (!f)
			continue;
		grev = revents_of(fds, n, f->gidx, f->gfd);
		urev = revents_of(fds, n, f->uidx, f->ufd);
		f->gidx = f->uidx = -1;
		if ((grev || urev) && !flow_step(m, f, grev, urev))
			continue;
		if (flow_deadline(m, f) <= m->now_ms)
			flow_expire(m, f);
	}
	compact(m);
}

void relay_free_all(struct mitm *m)
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
