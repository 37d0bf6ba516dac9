/* slirpnet/dns.c - guest DNS over UDP, answered in-process.
 *
 * restricted libslirp drops all UDP, and the vnameserver alias can not be a guestfwd, so the
 * frame layer answers UDP/53 itself: AAAA gets an empty NOERROR at once (guest IPv6 is off, and
 * a resolver waiting for AAAA would stall), everything else is forwarded from the host to the
 * configured server and the answer relayed. A query sent to one of the configured servers' own
 * addresses goes to that server, so the guest's resolv.conf order is its fail-over.
 * A reply too big for one guest frame is cut to its question with TC set, which makes the
 * guest retry over TCP: that is an ordinary flow to the alias's port 53 (nat.c), for the flow
 * handler to serve. Each relayed A answer is also read (dnsmsg.c) and its addresses reported
 * through cfg.dns_answer, so the caller's policy can tell which name an address was looked up as.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "slirpnet/dnsmsg.h"
#include "slirpnet/internal.h"

#define DNS_HDR 12
#define QTYPE_AAAA 28
#define QCLASS_IN 1
#define DNS_RECV_MAX 65536

int dns_open(struct slirpnet *sn, struct ml_err *e)
{
	uint16_t seed = 0;

	if (!sn->cfg.n_dns)
		return 0;
	sn->dns_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sn->dns_fd < 0)
		return ml_err_set(e, -errno, "slirpnet: DNS socket");
	/* Unpredictable ids make a blind off-path answer from the network much harder. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint16_t)sn_now_ms();
	sn->dns_next_id = seed;
	return 0;
}

void dns_close(struct slirpnet *sn)
{
	if (sn->dns_fd >= 0)
		close(sn->dns_fd);
	sn->dns_fd = -1;
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

/* Length of the question section (name, type, class) at offset 12, or 0 if malformed. The
 * name must be plain labels: compression pointers have no business in a query's question. */
static size_t question_len(const struct buf *msg, uint16_t *qtype, uint16_t *qclass)
{
	struct cursor c = { *msg, DNS_HDR, 0 };
	size_t name = 0;

	for (;;) {
		const uint8_t *l = cur_take(&c, 1);
		if (!l || *l > 63)
			return 0;
		name += 1u + *l;
		if (name > 255)
			return 0;
		if (*l == 0)
			break;
		if (!cur_take(&c, *l))
			return 0;
	}
	const uint8_t *tc = cur_take(&c, 4);
	if (!tc)
		return 0;
	*qtype = rd16(tc);
	*qclass = rd16(tc + 2);
	return name + 4;
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

static void answer_aaaa_empty(struct slirpnet *sn, const struct frame *f, const uint8_t *q, size_t qlen)
{
	uint8_t msg[DNS_HDR + DNS_QUESTION_MAX];

	memcpy(msg, q, DNS_HDR + qlen);
	/* QR, opcode 0, AA 0, TC 0, RD copied, RA, rcode NOERROR; one question, no records. */
	msg[2] = (uint8_t)(0x80 | (q[2] & 0x01));
	msg[3] = 0x80;
	wr16(msg + 4, 1);
	memset(msg + 6, 0, 6);
	reply_to_guest(sn, f->daddr, f->sport, msg, DNS_HDR + qlen);
	sn->st.dns_aaaa_empty++;
}

static struct dns_pending *pending_slot(struct slirpnet *sn, uint16_t *id)
{
	struct dns_pending *free_slot = NULL;

	for (size_t i = 0; i < DNS_PENDING_MAX; i++)
		if (!sn->dns[i].used && !free_slot)
			free_slot = &sn->dns[i];
	if (!free_slot)
		return NULL;
	for (int tries = 0; tries < 8; tries++) {
		bool clash = false;
		*id = (uint16_t)(sn->dns_next_id += 0x9e37); /* odd step: visits all 65536 ids */
		for (size_t i = 0; i < DNS_PENDING_MAX; i++)
			clash |= sn->dns[i].used && sn->dns[i].up_id == *id;
		if (!clash)
			return free_slot;
	}
	return NULL;
}

static void forward(struct slirpnet *sn, const struct frame *f, const uint8_t *q, size_t len, size_t qlen)
{
	uint8_t msg[DNS_RECV_MAX];
	struct dns_pending *d;
	uint16_t id;
	int server = server_for(sn, f->daddr);

	if (!(d = pending_slot(sn, &id)))
		return sn_drop(sn, SLIRPNET_DROP_DNS_TABLE_FULL);
	memcpy(msg, q, len);
	wr16(msg, id);
	if (sendto(sn->dns_fd, msg, len, 0, (const struct sockaddr *)&sn->cfg.dns[server],
		   sizeof(sn->cfg.dns[server])) != (ssize_t)len)
		return sn_drop(sn, SLIRPNET_DROP_DNS_SEND);
	*d = (struct dns_pending){ .used = true, .up_id = id, .guest_id = rd16(q), .gport = f->sport,
				   .asked = f->daddr, .server = (size_t)server,
				   .deadline_ms = sn_now_ms() + sn->cfg.dns_timeout_ms, .qlen = qlen };
	memcpy(d->question, q + DNS_HDR, qlen);
	sn->st.dns_forwarded++;
}

void dns_from_guest(struct slirpnet *sn, const uint8_t *p, const struct frame *f)
{
	struct buf frame = { p, f->data_off + f->data_len };
	struct buf msg = { buf_get(&frame, f->data_off, f->data_len), f->data_len };
	uint16_t qtype = 0, qclass = 0;
	size_t qlen;

	const uint8_t *h = msg.data ? buf_get(&msg, 0, DNS_HDR) : NULL;
	/* A query: QR 0, opcode QUERY, exactly one question, no answers or authority. */
	if (!h || (h[2] & 0xf8) != 0 || rd16(h + 4) != 1 || rd16(h + 6) || rd16(h + 8) || rd16(h + 10) > 1)
		return sn_drop(sn, SLIRPNET_DROP_DNS_QUERY);
	if (!(qlen = question_len(&msg, &qtype, &qclass)))
		return sn_drop(sn, SLIRPNET_DROP_DNS_QUERY);
	if (qtype == QTYPE_AAAA && qclass == QCLASS_IN)
		return answer_aaaa_empty(sn, f, h, qlen);
	forward(sn, f, h, msg.len, qlen);
}

static struct dns_pending *match_reply(struct slirpnet *sn, const struct sockaddr_in *from, const struct buf *msg)
{
	const uint8_t *h = buf_get(msg, 0, DNS_HDR);

	if (!h || !(h[2] & 0x80))
		return NULL;
	for (size_t i = 0; i < DNS_PENDING_MAX; i++) {
		struct dns_pending *d = &sn->dns[i];
		const struct sockaddr_in *srv = &sn->cfg.dns[d->server];
		const uint8_t *q;
		if (!d->used || d->up_id != rd16(h))
			continue;
		if (from->sin_addr.s_addr != srv->sin_addr.s_addr || from->sin_port != srv->sin_port)
			return NULL;
		/* The answer must repeat our question byte for byte, or it answers something else. */
		q = buf_get(msg, DNS_HDR, d->qlen);
		if (rd16(h + 4) != 1 || !q || memcmp(q, d->question, d->qlen) != 0)
			return NULL;
		return d;
	}
	return NULL;
}

/* Reads exactly what the guest will get, so the caller learns no more than its resolver does.
 * A malformed reply teaches nothing but is still relayed: the resolver judges it itself. */
static void learn(struct slirpnet *sn, const uint8_t *msg, size_t len)
{
	struct dnsmsg_a a;

	if (sn->cfg.dns_answer && dnsmsg_parse_a(msg, len, &a) == 0 && a.n > 0)
		sn->cfg.dns_answer(sn->cfg.arg, a.name, a.addrs, a.n, a.ttl_s);
}

static void relay(struct slirpnet *sn, struct dns_pending *d, uint8_t *msg, size_t len)
{
	size_t room = sn->cfg.mtu - 28;

	wr16(msg, d->guest_id);
	if (len > room) {
		/* Cut to header + question with TC: the resolver retries over TCP. */
		len = DNS_HDR + d->qlen;
		msg[2] |= 0x02;
		memset(msg + 6, 0, 6);
	}
	/* Before the reply is queued: a connection that follows it must find the policy told. */
	learn(sn, msg, len);
	reply_to_guest(sn, d->asked, d->gport, msg, len);
	d->used = false;
	sn->st.dns_answered++;
}

void dns_readable(struct slirpnet *sn)
{
	static uint8_t msg[DNS_RECV_MAX]; /* single-threaded by contract */

	for (int i = 0; i < 64; i++) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(sn->dns_fd, msg, sizeof(msg), 0, (struct sockaddr *)&from, &fl);
		struct dns_pending *d;

		if (n < 0)
			return;
		struct buf b = { msg, (size_t)n };
		if (fl != sizeof(from) || from.sin_family != AF_INET || !(d = match_reply(sn, &from, &b))) {
			sn_drop(sn, SLIRPNET_DROP_DNS_REPLY);
			continue;
		}
		relay(sn, d, msg, (size_t)n);
	}
}

void dns_expire(struct slirpnet *sn, int64_t now, int64_t *next)
{
	for (size_t i = 0; i < DNS_PENDING_MAX; i++) {
		struct dns_pending *d = &sn->dns[i];
		if (!d->used)
			continue;
		if (d->deadline_ms <= now) {
			d->used = false;
			sn_drop(sn, SLIRPNET_DROP_DNS_TIMEOUT);
		} else if (d->deadline_ms < *next) {
			*next = d->deadline_ms;
		}
	}
}
