/* mitm/dnsflow.c - DNS over TCP to the configured servers, one message at a time.
 *
 * A resolver falls back to TCP when a UDP answer was truncated, and any guest program may
 * simply choose TCP: relaying those bytes raw would let the guest ask the configured servers
 * anything and so tunnel data past the allow-list. So a TCP flow to port 53 of the DNS alias
 * or of a configured server is served here instead of by the relay: each length-prefixed
 * query is read whole (dnswire framer, at most 64 KiB), checked like a UDP one
 * (mitm_dns_allowed): refused -> a REFUSED answer written back and nothing sent upstream;
 * AAAA -> an empty answer (the guest has no IPv6); otherwise forwarded, with a random id, on
 * an upstream TCP connection opened when the first allowed query needs it. The answer must
 * carry that id and repeat the question; its id is mapped back, its addresses learned, and it
 * goes to the guest whole. One query is in flight per flow (RFC 7766 lets a server answer
 * pipelined queries one by one); the next is read only after its answer is written, so the
 * guest's unread queries wait in the socket (backpressure) and a flow holds at most one
 * message per direction.
 *
 * Ends: the guest's FIN once nothing is pending (FIN back); a malformed message or a length
 * below 12 (FIN); the upstream failing or silent for DNSFLOW_QUERY_MS with a query in flight
 * (the guest gets RST, like any refused upstream); DNSFLOW_IDLE_MS without a whole message.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/internal.h"

#define DNSFLOW_QUERY_MS 10000
#define DNSFLOW_IDLE_MS 30000
#define DNSFLOW_MSGS_PER_ROUND 16

struct dnsflow {
	int gfd, ufd;                      /* guest end; upstream (-1 until needed) */
	bool connecting, awaiting, guest_eof;
	uint32_t sockbuf;                  /* the upstream socket's budget share */
	int32_t gidx, uidx;                /* slots in the last poll array */
	struct sockaddr_in gsrc, odst, up;
	struct dnswire_framer gin, uin;    /* reading the guest's queries, upstream's answers */
	uint8_t *out;                      /* to the guest: length prefix + message */
	size_t out_len, out_off;
	uint8_t *fwd;                      /* to upstream: length prefix + message */
	size_t fwd_len, fwd_off;
	uint16_t up_id, guest_id;
	uint8_t question[DNSWIRE_WIRE_MAX + 4];
	size_t qlen;
	int64_t deadline_ms;
};

bool dnsflow_wants(const struct mitm *m, const struct sockaddr_in *orig)
{
	uint32_t ip = ntohl(orig->sin_addr.s_addr);

	if (ntohs(orig->sin_port) != 53 || !m->cfg.n_dns)
		return false;
	if (ip == m->dns_alias)
		return true;
	for (size_t i = 0; i < m->cfg.n_dns; i++)
		if (ntohl(m->cfg.dns[i].sin_addr.s_addr) == ip)
			return true;
	return false;
}

static void close_upstream(struct mitm *m, struct dnsflow *f)
{
	if (f->ufd >= 0)
		close(f->ufd);
	f->ufd = -1;
	f->connecting = false;
	sockbuf_release(m, f->sockbuf);
	f->sockbuf = 0;
	dnswire_framer_reset(&f->uin);
}

/* abort: the guest must see a reset (its query can no longer be answered). */
static void dnsflow_end(struct mitm *m, struct dnsflow *f, bool abort)
{
	if (abort && m->cfg.abort_flow)
		m->cfg.abort_flow(m->cfg.arg, &f->gsrc, &f->odst);
	close(f->gfd);
	close_upstream(m, f);
	dnswire_framer_reset(&f->gin);
	free(f->out);
	free(f->fwd);
	for (size_t i = 0; i < m->n_dnsflows; i++)
		if (m->dnsflows[i] == f)
			m->dnsflows[i] = NULL;
	free(f);
}

void dnsflow_start(struct mitm *m, int fd, const struct sockaddr_in *gsrc, const struct sockaddr_in *odst)
{
	struct dnsflow *f = NULL, **grown;

	if (m->n_dnsflows >= DNSFLOWS_MAX || !(f = calloc(1, sizeof(*f)))) {
		m->st.dropped_full++;
		if (m->cfg.abort_flow)
			m->cfg.abort_flow(m->cfg.arg, gsrc, odst);
		close(fd);
		return;
	}
	if (!(grown = realloc(m->dnsflows, (m->n_dnsflows + 1) * sizeof(*grown)))) {
		free(f);
		close(fd);
		return;
	}
	m->dnsflows = grown;
	*f = (struct dnsflow){ .gfd = fd, .ufd = -1, .gidx = -1, .uidx = -1, .gsrc = *gsrc, .odst = *odst,
			       .deadline_ms = mitm_clock_ms() + DNSFLOW_IDLE_MS };
	policy_upstream(m, odst, &f->up);
	m->dnsflows[m->n_dnsflows++] = f;
	m->st.dns_tcp_flows++;
}

/* Prefixes msg with its length into a new buffer. */
static uint8_t *framed(const uint8_t *msg, size_t len, size_t *out_len)
{
	uint8_t *b = malloc(len + 2);

	if (!b)
		return NULL;
	dnswire_wr16(b, (uint16_t)len);
	memcpy(b + 2, msg, len);
	*out_len = len + 2;
	return b;
}

static int connect_upstream(struct mitm *m, struct dnsflow *f)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	f->sockbuf = sockbuf_apply(m, fd);
	f->ufd = fd;
	if (connect(fd, (const struct sockaddr *)&f->up, sizeof(f->up)) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	f->connecting = true;
	return 0;
}

static uint16_t random_id(void)
{
	uint16_t id;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = (uint16_t)(mitm_clock_ms() * 2654435761u);
	return id;
}

/* One whole query from the guest. Returns false if the flow must end (FIN). */
static bool on_query(struct mitm *m, struct dnsflow *f, uint8_t *msg, size_t len)
{
	uint8_t reply[DNSWIRE_HDR + DNSWIRE_WIRE_MAX + 4];
	struct dnswire_query q;
	bool allowed;
	size_t n;

	if (dnswire_query_parse(msg, len, &q) < 0)
		return false;
	f->deadline_ms = mitm_clock_ms() + DNSFLOW_IDLE_MS;
	allowed = mitm_dns_allowed(m, &q, &f->up);
	if (!allowed || (q.qtype == DNSWIRE_TYPE_AAAA && q.qclass == DNSWIRE_CLASS_IN)) {
		n = dnswire_reply_empty(msg, &q, allowed ? DNSWIRE_RCODE_NOERROR : DNSWIRE_RCODE_REFUSED,
					reply, sizeof(reply));
		return n && (f->out = framed(reply, n, &f->out_len)) != NULL;
	}
	f->up_id = random_id();
	f->guest_id = q.id;
	f->qlen = q.qlen;
	memcpy(f->question, msg + DNSWIRE_HDR, q.qlen);
	dnswire_wr16(msg, f->up_id);
	if (!(f->fwd = framed(msg, len, &f->fwd_len)))
		return false;
	f->fwd_off = 0;
	f->awaiting = true;
	f->deadline_ms = mitm_clock_ms() + DNSFLOW_QUERY_MS;
	m->st.dns_tcp_queries++;
	return f->ufd >= 0 || connect_upstream(m, f) == 0;
}

/* One whole message from upstream. Returns false if the flow must end (RST). */
static bool on_answer(struct mitm *m, struct dnsflow *f, uint8_t *msg, size_t len)
{
	struct dnswire_answer a;

	/* Not ours (wrong id or question): ignored, the real answer may still come. */
	if (!f->awaiting || !(msg[2] & 0x80) || dnswire_rd16(msg) != f->up_id || dnswire_rd16(msg + 4) != 1 ||
	    len < DNSWIRE_HDR + f->qlen || memcmp(msg + DNSWIRE_HDR, f->question, f->qlen) != 0)
		return true;
	dnswire_wr16(msg, f->guest_id);
	if (dnswire_parse_answer(msg, len, &a) == 0 && (a.n || a.n_chain))
		mitm_dns_learn(m, &a);
	if (!(f->out = framed(msg, len, &f->out_len)))
		return false;
	f->out_off = 0;
	f->awaiting = false;
	f->deadline_ms = mitm_clock_ms() + DNSFLOW_IDLE_MS;
	return true;
}

/* Sends what is pending in *buf; returns -1 on a socket error, 0 otherwise. */
static int send_pending(int fd, uint8_t **buf, size_t *len, size_t *off)
{
	while (*buf && *off < *len) {
		ssize_t w = send(fd, *buf + *off, *len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
		*off += (size_t)w;
	}
	if (*buf) {
		free(*buf);
		*buf = NULL;
		*len = *off = 0;
	}
	return 0;
}

/* Reads into fr from fd until a message is whole (1), nothing more is there (0), EOF (-2)
 * or an error or a bad length (-1). */
static int read_message(struct mitm *m, int fd, struct dnswire_framer *fr)
{
	for (;;) {
		size_t want = dnswire_framer_want(fr);
		ssize_t r = recv(fd, m->scratch, want, MSG_DONTWAIT);
		int k;
		if (r == 0)
			return -2;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
		if ((k = dnswire_framer_feed(fr, m->scratch, (size_t)r)) != 0)
			return k < 0 ? -1 : 1;
	}
}

static bool upstream_step(struct mitm *m, struct dnsflow *f, short rev)
{
	uint8_t *msg;
	size_t len;
	int r;

	if (f->connecting) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (!rev)
			return true;
		if (getsockopt(f->ufd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
			return false;
		f->connecting = false;
	}
	if (send_pending(f->ufd, &f->fwd, &f->fwd_len, &f->fwd_off) < 0)
		return false;
	if (!(rev & (POLLIN | POLLHUP | POLLERR)))
		return true;
	r = read_message(m, f->ufd, &f->uin);
	if (r == 1) {
		msg = dnswire_framer_take(&f->uin, &len);
		bool ok = on_answer(m, f, msg, len);
		free(msg);
		return ok;
	}
	if (r < 0) {
		if (f->awaiting)
			return false;
		close_upstream(m, f);  /* the server closed an idle connection: reopen when needed */
	}
	return true;
}

/* Returns false if the flow must end with a FIN. */
static bool guest_step(struct mitm *m, struct dnsflow *f)
{
	if (send_pending(f->gfd, &f->out, &f->out_len, &f->out_off) < 0)
		return false;
	for (int i = 0; i < DNSFLOW_MSGS_PER_ROUND && !f->out && !f->awaiting && !f->guest_eof; i++) {
		uint8_t *msg;
		size_t len;
		int r;

		r = read_message(m, f->gfd, &f->gin);
		if (r == 0)
			break;
		if (r == -2 && !dnswire_framer_busy(&f->gin)) {
			f->guest_eof = true;
			break;
		}
		if (r < 0)
			return false;
		msg = dnswire_framer_take(&f->gin, &len);
		bool ok = on_query(m, f, msg, len);
		free(msg);
		if (!ok || send_pending(f->gfd, &f->out, &f->out_len, &f->out_off) < 0)
			return false;
	}
	return true;
}

static void step(struct mitm *m, struct dnsflow *f, short grev, short urev)
{
	bool was_awaiting;

	if (f->ufd >= 0 && !upstream_step(m, f, urev))
		return dnsflow_end(m, f, true);
	was_awaiting = f->awaiting;
	(void)grev;  /* both ends are tried: a recv or send that would block costs one call */
	if (!guest_step(m, f))
		return dnsflow_end(m, f, false);
	/* A query just read is sent at once (the socket is usually writable). */
	if (!was_awaiting && f->awaiting && f->ufd >= 0 && !f->connecting &&
	    send_pending(f->ufd, &f->fwd, &f->fwd_len, &f->fwd_off) < 0)
		return dnsflow_end(m, f, true);
	if (f->guest_eof && !f->awaiting && !f->out)
		return dnsflow_end(m, f, false);
}

static short guest_events(const struct dnsflow *f)
{
	return (short)((f->out ? POLLOUT : 0) | (!f->out && !f->awaiting && !f->guest_eof ? POLLIN : 0));
}

static short upstream_events(const struct dnsflow *f)
{
	if (f->ufd < 0)
		return 0;
	return (short)(f->connecting || f->fwd ? POLLOUT : POLLIN);
}

void mitm_dns_poll_fill(struct mitm *m, struct pollfd **fds, size_t *n, int *timeout_ms)
{
	int64_t now = mitm_clock_ms(), next = INT64_MAX;
	size_t k = 0;

	if (2 * m->n_dnsflows > m->cap_dns_pfds) {
		struct pollfd *p = realloc(m->dns_pfds, 2 * DNSFLOWS_MAX * sizeof(*p));
		if (p) {
			m->dns_pfds = p;
			m->cap_dns_pfds = 2 * DNSFLOWS_MAX;
		}
	}
	for (size_t i = 0; i < m->n_dnsflows; i++) {
		struct dnsflow *f = m->dnsflows[i];
		short ge = guest_events(f), ue = upstream_events(f);
		f->gidx = f->uidx = -1;
		if (ge && k < m->cap_dns_pfds) {
			m->dns_pfds[k] = (struct pollfd){ .fd = f->gfd, .events = ge };
			f->gidx = (int32_t)k++;
		}
		if (ue && k < m->cap_dns_pfds) {
			m->dns_pfds[k] = (struct pollfd){ .fd = f->ufd, .events = ue };
			f->uidx = (int32_t)k++;
		}
		if (f->deadline_ms < next)
			next = f->deadline_ms;
	}
	if (next != INT64_MAX) {
		int64_t wait = next > now ? next - now : 0;
		if (wait > INT32_MAX)
			wait = INT32_MAX;
		if (*timeout_ms < 0 || wait < *timeout_ms)
			*timeout_ms = (int)wait;
	}
	*fds = m->dns_pfds;
	*n = k;
}

static short revents(const struct pollfd *fds, size_t n, int32_t idx, int fd)
{
	return idx >= 0 && (size_t)idx < n && fds[idx].fd == fd ? fds[idx].revents : 0;
}

void mitm_dns_poll_done(struct mitm *m, const struct pollfd *fds, size_t n)
{
	size_t count = m->n_dnsflows, k = 0;
	int64_t now = mitm_clock_ms();

	for (size_t i = 0; i < count; i++) {
		struct dnsflow *f = m->dnsflows[i];
		short grev = revents(fds, n, f->gidx, f->gfd), urev = revents(fds, n, f->uidx, f->ufd);

		f->gidx = f->uidx = -1;
		if (grev || urev)
			step(m, f, grev, urev);
		if ((f = m->dnsflows[i]) && f->deadline_ms <= now)
			dnsflow_end(m, f, f->awaiting || f->connecting);
	}
	for (size_t i = 0; i < m->n_dnsflows; i++)
		if (m->dnsflows[i])
			m->dnsflows[k++] = m->dnsflows[i];
	m->n_dnsflows = k;
}

void dnsflow_free_all(struct mitm *m)
{
	for (size_t i = 0; i < m->n_dnsflows; i++)
		if (m->dnsflows[i])
			dnsflow_end(m, m->dnsflows[i], false);
	free(m->dnsflows);
	free(m->dns_pfds);
	m->dnsflows = NULL;
	m->dns_pfds = NULL;
	m->n_dnsflows = m->cap_dns_pfds = 0;
}
