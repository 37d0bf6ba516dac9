/* slirpnet/dns.c - guest DNS over UDP, answered in-process.
 *
 * restricted libslirp drops all UDP, and the vnameserver alias can not be a guestfwd, so the
 * frame layer answers UDP/53 itself. Each query is read strictly (dnswire), then shown to the
 * caller's dns_check: a question it refuses gets REFUSED at once and nothing leaves the host
 * (DNS would otherwise be an open channel past the allow-list). AAAA gets an empty NOERROR at
 * once (guest IPv6 is off, and a resolver waiting for AAAA would stall). Everything else is
 * forwarded to the configured server and the answer relayed. A query sent to one of the
 * configured servers' own addresses goes to that server, so the guest's resolv.conf order is
 * its fail-over.
 *
 * Each forwarded query leaves from a socket of its own, connected to the server (so the
 * kernel picks a fresh random source port and drops datagrams from anyone else), with a random
 * id that is mapped back to the guest's: an off-path forger must guess both.
 * A reply too big for one guest frame is cut to its question with TC set, which makes the
 * guest retry over TCP: that is an ordinary flow to the alias's port 53 (nat.c), for the flow
 * handler to serve. Each relayed A answer is also read (dnswire) and reported through
 * cfg.dns_answer, so the caller's policy can tell which name an address was looked up as.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "dnswire/dnswire.h"
#include "slirpnet/internal.h"

#define DNS_RECV_MAX 65536

void dns_close(struct slirpnet *sn)
{
	for (size_t i = 0; i < DNS_PENDING_MAX; i++)
		if (sn->dns[i].used) {
			close(sn->dns[i].fd);
			sn->dns[i].used = false;
		}
}

/* Ids come from the kernel's CSPRNG, a batch at a time. */
static uint16_t random_id(struct slirpnet *sn)
{
	if (sn->dns_rand_left == 0) {
		if (getrandom(sn->dns_rand, sizeof(sn->dns_rand), GRND_NONBLOCK) != (ssize_t)sizeof(sn->dns_rand)) {
			/* Not seeded yet (early boot only): anything is better than a fixed id. */
			for (size_t i = 0; i < DNS_RAND_IDS; i++)
				sn->dns_rand[i] ^= (uint16_t)(sn_now_ms() * 2654435761u >> (i % 16));
		}
		sn->dns_rand_left = DNS_RAND_IDS;
	}
	return sn->dns_rand[--sn->dns_rand_left];
}

/* Index of the server the guest addressed, or 0 for the alias; -1 if it is no DNS address. */
static int server_for(const struct slirpnet *sn, uint32_t daddr)
{
	if (daddr == sn->dns_alias)
		return 0;
	for (size_t i = 0; i < sn->cfg.n_dns; i++)
		if (ntohl(sn->cfg.dns[i].sin_addr.s_addr) == daddr)
			return (int)i;
	return -1;
}

bool dns_wants(const struct slirpnet *sn, const struct frame *f)
{
	return f->proto == IPP_UDP && f->dport == 53 && sn->cfg.n_dns && server_for(sn, f->daddr) >= 0;
}

static void reply_to_guest(struct slirpnet *sn, uint32_t from, uint16_t gport, const uint8_t *msg, size_t len)
{
	/* Not called from inside slirp_input, so the rewrite half of scratch is free. */
	uint8_t *frame = sn->scratch;
	size_t n;

	n = frame_build_udp(frame, sn->scratch_cap, sn->gw_mac, sn->cfg.guest_mac, from, 53, sn->guest_ip, gport,
			    msg, len);
	if (n)
		sn_queue_out(sn, frame, n);
}

static void answer_empty(struct slirpnet *sn, const struct frame *f, const uint8_t *msg,
			 const struct dnswire_query *q, unsigned rcode)
{
	uint8_t out[DNSWIRE_HDR + DNSWIRE_WIRE_MAX + 4];
	size_t n = dnswire_reply_empty(msg, q, rcode, out, sizeof(out));

	if (n)
		reply_to_guest(sn, f->daddr, f->sport, out, n);
}

static struct dns_pending *pending_slot(struct slirpnet *sn)
{
	for (size_t i = 0; i < DNS_PENDING_MAX; i++)
		if (!sn->dns[i].used)
			return &sn->dns[i];
	return NULL;
}

/* A fresh UDP socket connected to the server: its own random source port. */
static int upstream_socket(const struct sockaddr_in *server)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)server, sizeof(*server)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void forward(struct slirpnet *sn, const struct frame *f, const uint8_t *msg, size_t len,
		    const struct dnswire_query *q)
{
	uint8_t out[DNS_RECV_MAX];
	struct dns_pending *d = pending_slot(sn);
	int server = server_for(sn, f->daddr), fd;
	uint16_t id = random_id(sn);

	if (!d)
		return sn_drop(sn, SLIRPNET_DROP_DNS_TABLE_FULL);
	if ((fd = upstream_socket(&sn->cfg.dns[server])) < 0)
		return sn_drop(sn, SLIRPNET_DROP_DNS_SEND);
	memcpy(out, msg, len);
	dnswire_wr16(out, id);
	if (send(fd, out, len, 0) != (ssize_t)len) {
		close(fd);
		return sn_drop(sn, SLIRPNET_DROP_DNS_SEND);
	}
	*d = (struct dns_pending){ .used = true, .fd = fd, .pidx = -1, .up_id = id, .guest_id = q->id,
				   .gport = f->sport, .asked = f->daddr,
				   .deadline_ms = sn_now_ms() + sn->cfg.dns_timeout_ms, .qlen = q->qlen };
	memcpy(d->question, msg + DNSWIRE_HDR, q->qlen);
	sn->st.dns_forwarded++;
}

void dns_from_guest(struct slirpnet *sn, const uint8_t *p, const struct frame *f)
{
	struct buf frame = { p, f->data_off + f->data_len };
	const uint8_t *msg = buf_get(&frame, f->data_off, f->data_len);
	struct dnswire_query q;

	if (!msg || dnswire_query_parse(msg, f->data_len, &q) < 0)
		return sn_drop(sn, SLIRPNET_DROP_DNS_QUERY);
	if (sn->cfg.dns_check) {
		int s = server_for(sn, f->daddr);
		if (sn->cfg.dns_check(sn->cfg.arg, &q, &sn->cfg.dns[s]) < 0) {
			sn->st.dns_refused++;
			return answer_empty(sn, f, msg, &q, DNSWIRE_RCODE_REFUSED);
		}
	}
	if (q.qtype == DNSWIRE_TYPE_AAAA && q.qclass == DNSWIRE_CLASS_IN) {
		sn->st.dns_aaaa_empty++;
		return answer_empty(sn, f, msg, &q, DNSWIRE_RCODE_NOERROR);
	}
	forward(sn, f, msg, f->data_len, &q);
}

/* The reply must carry our id and repeat our question byte for byte, or it answers something
 * else (the connected socket already saw to its source). */
static bool reply_matches(const struct dns_pending *d, const struct buf *msg)
{
	const uint8_t *h = buf_get(msg, 0, DNSWIRE_HDR), *q;

	if (!h || !(h[2] & 0x80) || dnswire_rd16(h) != d->up_id || dnswire_rd16(h + 4) != 1)
		return false;
	q = buf_get(msg, DNSWIRE_HDR, d->qlen);
	return q && memcmp(q, d->question, d->qlen) == 0;
}

/* Reads exactly what the guest will get, so the caller learns no more than its resolver does.
 * A malformed reply teaches nothing but is still relayed: the resolver judges it itself. */
static void learn(struct slirpnet *sn, const uint8_t *msg, size_t len)
{
	struct dnswire_answer a;

	if (sn->cfg.dns_answer && dnswire_parse_answer(msg, len, &a) == 0 && (a.n > 0 || a.n_chain > 0))
		sn->cfg.dns_answer(sn->cfg.arg, &a);
}

static void pending_end(struct dns_pending *d)
{
	close(d->fd);
	d->used = false;
}

static void relay(struct slirpnet *sn, struct dns_pending *d, uint8_t *msg, size_t len)
{
	size_t room = sn->cfg.mtu - 28;

	dnswire_wr16(msg, d->guest_id);
	if (len > room) {
		/* Cut to header + question with TC: the resolver retries over TCP. */
		len = DNSWIRE_HDR + d->qlen;
		msg[2] |= 0x02;
		memset(msg + 6, 0, 6);
	}
	/* Before the reply is queued: a connection that follows it must find the policy told. */
	learn(sn, msg, len);
	reply_to_guest(sn, d->asked, d->gport, msg, len);
	pending_end(d);
	sn->st.dns_answered++;
}

static void pending_readable(struct slirpnet *sn, struct dns_pending *d)
{
	static uint8_t msg[DNS_RECV_MAX]; /* single-threaded by contract */

	for (int i = 0; i < 8 && d->used; i++) {
		ssize_t n = recv(d->fd, msg, sizeof(msg), 0);
		struct buf b;

		if (n < 0) {
			/* ICMP port unreachable shows up as ECONNREFUSED: the server is not there;
			 * the resolver's own timeout moves it on to the next one. */
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				pending_end(d);
				sn_drop(sn, SLIRPNET_DROP_DNS_SEND);
			}
			return;
		}
		b = (struct buf){ msg, (size_t)n };
		if (!reply_matches(d, &b)) {
			sn_drop(sn, SLIRPNET_DROP_DNS_REPLY);
			continue;
		}
		relay(sn, d, msg, (size_t)n);
	}
}

void dns_poll_fill(struct slirpnet *sn, int (*add)(int fd, int events, void *opaque))
{
	for (size_t i = 0; i < DNS_PENDING_MAX; i++)
		if (sn->dns[i].used)
			sn->dns[i].pidx = add(sn->dns[i].fd, SLIRP_POLL_IN, sn);
}

void dns_poll_done(struct slirpnet *sn, const struct pollfd *fds, size_t n)
{
	for (size_t i = 0; i < DNS_PENDING_MAX; i++) {
		struct dns_pending *d = &sn->dns[i];
		int k = d->pidx;

		d->pidx = -1;
		if (d->used && k >= 0 && (size_t)k < n && fds[k].fd == d->fd &&
		    (fds[k].revents & (POLLIN | POLLERR | POLLHUP)))
			pending_readable(sn, d);
	}
}

void dns_expire(struct slirpnet *sn, int64_t now, int64_t *next)
{
	for (size_t i = 0; i < DNS_PENDING_MAX; i++) {
		struct dns_pending *d = &sn->dns[i];
		if (!d->used)
			continue;
		if (d->deadline_ms <= now) {
			pending_end(d);
			sn_drop(sn, SLIRPNET_DROP_DNS_TIMEOUT);
		} else if (d->deadline_ms < *next) {
			*next = d->deadline_ms;
		}
	}
}
