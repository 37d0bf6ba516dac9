/* mitm/relay.c - the plain relay handler: one upstream TCP connection per guest flow, made the
 * moment the flow arrives, bytes spliced both ways.
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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/internal.h"

enum { RELAY_CONNECTING, RELAY_OPEN };

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

static bool relay_step(struct mitm *m, struct mitm_flow *f, short grev, short urev)
{
	enum side s;

	if (f->state == RELAY_CONNECTING) {
		int err;

		if (!urev)
			return true;
		if ((err = flow_so_error(f->ufd))) {
			ml_debug("mitm: connect to %s:%u: %s", inet_ntoa(f->odst.sin_addr),
				 ntohs(f->odst.sin_port), strerror(err));
			m->st.connect_failed++;
			flow_end(m, f, SIDE_UPSTREAM);
			return false;
		}
		f->state = RELAY_OPEN;
		f->last_ms = m->now_ms;
		grev |= POLLIN;  /* the guest may have written while we connected */
	}
	if ((urev & POLLERR) && flow_so_error(f->ufd))
		s = SIDE_UPSTREAM;
	else if ((grev & POLLERR) && flow_so_error(f->gfd))
		s = SIDE_GUEST;
	else
		s = pump(m, f, grev, urev);
	if (s || (f->up.shut && f->down.shut)) {
		flow_end(m, f, s);
		return false;
	}
	return true;
}

/* The relay connects at once, to the destination the guest dialed (policy_upstream maps the
 * gateway and the DNS alias). */
static bool relay_start(struct mitm *m, struct mitm_flow *f)
{
	struct sockaddr_in up;
	int r;

	policy_upstream(m, &f->odst, &up);
	if ((r = flow_connect(m, f, &up)) < 0) {
		ml_debug("mitm: connect to %s:%u: %s", inet_ntoa(up.sin_addr), ntohs(up.sin_port),
			 strerror(-r));
		m->st.connect_failed++;
		flow_end(m, f, SIDE_UPSTREAM);
		return false;
	}
	f->state = r ? RELAY_OPEN : RELAY_CONNECTING;
	return true;
}

static int64_t relay_deadline(const struct mitm *m, const struct mitm_flow *f)
{
	if (f->state == RELAY_CONNECTING)
		return f->last_ms + m->cfg.connect_timeout_ms;
	if (f->up.eof || f->down.eof)
		return f->last_ms + m->cfg.half_close_ms;
	return f->last_ms + m->cfg.idle_timeout_ms;
}

static bool relay_expire(struct mitm *m, struct mitm_flow *f)
{
	if (f->state == RELAY_CONNECTING) {
		m->st.connect_timeout++;
		flow_end(m, f, SIDE_UPSTREAM);
		return false;
	}
	m->st.reaped_idle++;
	flow_end(m, f, SIDE_NONE);
	return false;
}

static short relay_guest_events(const struct mitm_flow *f)
{
	if (f->state != RELAY_OPEN)
		return 0;
	return (short)((can_read(&f->up) ? POLLIN : 0) | (f->down.len ? POLLOUT : 0));
}

static short relay_upstream_events(const struct mitm_flow *f)
{
	if (f->state != RELAY_OPEN)
		return POLLOUT;
	return (short)((can_read(&f->down) ? POLLIN : 0) | (f->up.len ? POLLOUT : 0));
}

static void relay_release(struct mitm *m, struct mitm_flow *f)
{
	dirbuf_drop(m, &f->up);
	dirbuf_drop(m, &f->down);
}

const struct flow_ops relay_ops = {
	.name = "relay",
	.start = relay_start,
	.guest_events = relay_guest_events,
	.upstream_events = relay_upstream_events,
	.step = relay_step,
	.deadline = relay_deadline,
	.expire = relay_expire,
	.release = relay_release,
};
