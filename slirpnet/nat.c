/* slirpnet/nat.c - guest TCP flows to libslirp and back, one fd per flow.
 *
 * libslirp (restricted) opens nothing on the host; it completes a guest handshake by itself
 * only for guestfwd addresses inside the virtual network. So each allowed flow gets a fresh
 * "slot" (address:port inside vnetwork) registered with slirp_add_unix() on our private
 * listener; the guest's frames are rewritten to the slot on the way in and back to the
 * original destination on the way out. libslirp connects to the listener while it processes
 * the handshake-completing ACK, inside slirp_input(), so the fd accepted right after that
 * call belongs to exactly that flow (the libslirp facts behind this: docs/guest-traps.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "slirpnet/internal.h"

#define SLOT_FIRST_HOST 100  /* slots use vnet .100-.199: clear of .2, .3, .15 and DHCP */
#define SLOT_HOSTS 100
#define SLOT_PORT_FIRST 1024
#define SLOT_PORTS (65536 - SLOT_PORT_FIRST)
#define SLOT_TRIES 64

static int make_temp_dir(struct slirpnet *sn, struct ml_err *e)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp || strlen(tmp) > 80)
		tmp = "/tmp";
	snprintf(sn->dir, sizeof(sn->dir), "%s/slirpnet-XXXXXX", tmp);
	if (!mkdtemp(sn->dir))
		return ml_err_set(e, -errno, "slirpnet: mkdtemp %s", sn->dir);
	sn->own_dir = true;
	return 0;
}

/* runtime_dir too long for the socket's address: a temp dir, and runtime_dir a symlink to it
 * (left by a crash, gc follows that link; a symlink that exists already is refused). */
static int make_linked_dir(struct slirpnet *sn, struct ml_err *e)
{
	int r = make_temp_dir(sn, e);
	if (r < 0)
		return r;
	if (!(sn->dir_link = strdup(sn->cfg.runtime_dir)))
		r = ml_err_set(e, -ENOMEM, "out of memory");
	else if (symlink(sn->dir, sn->dir_link) < 0)
		r = ml_err_set(e, -errno, "slirpnet: symlink %s", sn->dir_link);
	if (r < 0) {
		free(sn->dir_link);
		sn->dir_link = NULL;
		rmdir(sn->dir);
		sn->own_dir = false;
	}
	return r;
}

static int make_dir(struct slirpnet *sn, struct ml_err *e)
{
	const char *rd = sn->cfg.runtime_dir;
	if (!rd)
		return make_temp_dir(sn, e);
	if (strlen(rd) + sizeof("/flow.sock") > sizeof(((struct sockaddr_un *)0)->sun_path))
		return make_linked_dir(sn, e);
	strcpy(sn->dir, rd); /* fits: sun_path is shorter than dir */
	if (mkdir(sn->dir, 0700) < 0 && errno != EEXIST)
		return ml_err_set(e, -errno, "slirpnet: mkdir %s", sn->dir);
	sn->own_dir = true;
	return 0;
}

int nat_open(struct slirpnet *sn, struct ml_err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	unsigned buckets = 64;

	if ((~sn->netmask) < 255)
		return ml_err_set(e, -EINVAL, "slirpnet: the virtual network must be /24 or larger");
	while (buckets < 2 * sn->cfg.max_flows)
		buckets *= 2;
	sn->hmask = buckets - 1;
	sn->hguest = malloc(buckets * sizeof(int));
	sn->hslot = malloc(buckets * sizeof(int));
	if (!sn->hguest || !sn->hslot)
		return ml_err_set(e, -ENOMEM, "slirpnet: out of memory");
	memset(sn->hguest, 0xff, buckets * sizeof(int)); /* all -1 */
	memset(sn->hslot, 0xff, buckets * sizeof(int));
	if ((r = make_dir(sn, e)) < 0)
		return r;
	if ((size_t)snprintf(sn->sock_path, sizeof(sn->sock_path), "%s/flow.sock", sn->dir) >= sizeof(sa.sun_path))
		return ml_err_set(e, -ENAMETOOLONG, "slirpnet: socket path %s too long", sn->sock_path);
	strcpy(sa.sun_path, sn->sock_path);
	unlink(sn->sock_path);
	sn->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sn->listener < 0)
		return ml_err_set(e, -errno, "slirpnet: socket");
	/* libslirp connects blocking; a deep backlog means it never waits on us. */
	if (bind(sn->listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(sn->listener, 256) < 0)
		return ml_err_set(e, -errno, "slirpnet: listen on %s", sn->sock_path);
	return 0;
}

void nat_close(struct slirpnet *sn)
{
	free(sn->hguest);
	free(sn->hslot);
	sn->hguest = sn->hslot = NULL;
	if (sn->listener >= 0) {
		close(sn->listener);
		unlink(sn->sock_path);
	}
	sn->listener = -1;
	if (sn->own_dir)
		rmdir(sn->dir);
	if (sn->dir_link)
		unlink(sn->dir_link);
	free(sn->dir_link);
	sn->dir_link = NULL;
}

static bool in_vnet(const struct slirpnet *sn, uint32_t a)
{
	return (a & sn->netmask) == sn->vnet;
}

/* Destinations no policy can open: the slot space and the rest of the virtual network (else
 * a guest could hijack another flow's slot), loopback, "this network", link-local (cloud
 * metadata), multicast, reserved and broadcast. The gateway and TCP DNS to the alias go to
 * connect_check (the handler maps the alias to a real server; slots never use its address). */
static bool always_blocked(const struct slirpnet *sn, uint32_t dst, uint16_t dport)
{
	if (dport == 0 || dst == sn->guest_ip)
		return true;
	if (dst == sn->dns_alias && dport == 53)
		return false;
	if (in_vnet(sn, dst))
		return dst != sn->gateway;
	return (dst >> 24) == 127 || (dst >> 24) == 0 || (dst >> 16) == 0xa9fe || (dst >> 28) >= 0xe;
}

/* Two hash indexes over the table, chained through entry indices (-1 ends a chain): by the
 * guest's view (guest port, original destination) for frames from the guest, and by slot for
 * frames from libslirp. Slots never change owner, so the slot index is insert-only. */
static unsigned hash_guest(const struct slirpnet *sn, uint16_t gport, uint32_t odst, uint16_t odport)
{
	return ((odst * 2654435761u) ^ (((uint32_t)gport << 16 | odport) * 40503u)) & sn->hmask;
}

static unsigned hash_slot(const struct slirpnet *sn, uint32_t sip, uint16_t sport)
{
	return ((sip * 2654435761u) ^ (sport * 40503u)) & sn->hmask;
}

static struct nat_flow *find_by_guest(struct slirpnet *sn, uint16_t gport, uint32_t odst, uint16_t odport)
{
	for (int i = sn->hguest[hash_guest(sn, gport, odst, odport)]; i >= 0; i = sn->flows[i].next_g) {
		struct nat_flow *fl = &sn->flows[i];
		if (fl->gport == gport && fl->odst == odst && fl->odport == odport)
			return fl;
	}
	return NULL;
}

static struct nat_flow *find_by_slot(struct slirpnet *sn, uint32_t sip, uint16_t sport, uint16_t gport)
{
	for (int i = sn->hslot[hash_slot(sn, sip, sport)]; i >= 0; i = sn->flows[i].next_s) {
		struct nat_flow *fl = &sn->flows[i];
		if (fl->state != NAT_FREE && fl->sip == sip && fl->sport == sport && fl->gport == gport)
			return fl;
	}
	return NULL;
}

static bool slot_taken(struct slirpnet *sn, uint32_t sip, uint16_t sport)
{
	if (sip == sn->guest_ip || sip == sn->gateway || sip == sn->dns_alias)
		return true;
	for (int i = sn->hslot[hash_slot(sn, sip, sport)]; i >= 0; i = sn->flows[i].next_s)
		if (sn->flows[i].sip == sip && sn->flows[i].sport == sport)
			return true;
	return false;
}

static void guest_index_add(struct slirpnet *sn, struct nat_flow *fl)
{
	unsigned h = hash_guest(sn, fl->gport, fl->odst, fl->odport);

	fl->next_g = sn->hguest[h];
	sn->hguest[h] = (int)(fl - sn->flows);
}

/* The only way an entry becomes FREE: it leaves the guest index with it. */
static void flow_free(struct slirpnet *sn, struct nat_flow *fl)
{
	int self = (int)(fl - sn->flows);
	int *pp = &sn->hguest[hash_guest(sn, fl->gport, fl->odst, fl->odport)];

	while (*pp >= 0 && *pp != self)
		pp = &sn->flows[*pp].next_g;
	if (*pp == self)
		*pp = fl->next_g;
	fl->state = NAT_FREE;
}

/* Each table entry owns one slot, registered on first use and never removed:
 * slirp_remove_guestfwd() in 4.7 leaks the unix path string (one per flow, unbounded), while
 * a registered slot nobody can address costs nothing (the guest cannot reach vnetwork
 * addresses, see always_blocked). Entries are reused round-robin, so a slot comes back only
 * after every other entry was used, long after slirp's TIME_WAIT for it.
 * check_guestfwd in libslirp 4.7 compares ports in different byte orders: it can accept a
 * duplicate and refuse a free slot. Uniqueness is ours to keep; a refusal means "next". */
static int register_slot(struct slirpnet *sn, struct nat_flow *fl)
{
	for (int tries = 0; tries < SLOT_TRIES; tries++) {
		uint32_t n = sn->next_slot++;
		uint32_t sip = sn->vnet + SLOT_FIRST_HOST + (n / SLOT_PORTS) % SLOT_HOSTS;
		uint16_t sport = (uint16_t)(SLOT_PORT_FIRST + n % SLOT_PORTS);
		struct in_addr a = { htonl(sip) };

		if (slot_taken(sn, sip, sport))
			continue;
		if (slirp_add_unix(sn->slirp, sn->sock_path, &a, sport) < 0) {
			sn->st.slot_retries++;
			continue;
		}
		unsigned h = hash_slot(sn, sip, sport);
		fl->sip = sip;
		fl->sport = sport;
		fl->registered = true;
		fl->next_s = sn->hslot[h];
		sn->hslot[h] = (int)(fl - sn->flows);
		sn->st.slots_registered++;
		return 0;
	}
	return -EADDRINUSE;
}

static void send_rst(struct slirpnet *sn, const struct frame *f)
{
	uint8_t out[ETH_HDR + 40];
	uint32_t ack = f->seq + (uint32_t)f->data_len + ((f->tcp_flags & TCPF_SYN) ? 1 : 0) +
		       ((f->tcp_flags & TCPF_FIN) ? 1 : 0);
	size_t n = frame_build_tcp(out, sizeof(out), sn->gw_mac, sn->cfg.guest_mac, f->daddr, f->dport,
				   f->saddr, f->sport, 0, ack, TCPF_RST | TCPF_ACK, 0, NULL, 0);

	sn_queue_out(sn, out, n);
}

static struct nat_flow *reject(struct slirpnet *sn, const struct frame *f, enum slirpnet_drop why)
{
	send_rst(sn, f);
	sn_drop(sn, why);
	return NULL;
}

/* No free entry: a closed flow's lingering entry (only kept to rewrite late retransmissions)
 * is worth less than a new connection. Without this, more than max_flows connections within
 * linger_ms would be refused: a guest opening short connections in a loop (a test suite, a
 * crawler) would hit it at about 100 per second. The one nearest its end goes first. */
static struct nat_flow *oldest_lingering(struct slirpnet *sn)
{
	struct nat_flow *best = NULL;

	for (unsigned i = 0; i < sn->cfg.max_flows; i++) {
		struct nat_flow *c = &sn->flows[i];
		if (c->state == NAT_LINGER && (!best || c->deadline_ms < best->deadline_ms))
			best = c;
	}
	if (best)
		sn->st.linger_evicted++;
	return best;
}

/* The policy runs here, on the raw SYN: a denied destination never sees slirp complete a
 * handshake, so the guest cannot tell a deny from a refused port. */
static struct nat_flow *new_flow(struct slirpnet *sn, const struct frame *f)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(f->dport),
				   .sin_addr = { htonl(f->daddr) } };
	struct nat_flow *fl = NULL;
	unsigned n = sn->cfg.max_flows;

	if (always_blocked(sn, f->daddr, f->dport))
		return reject(sn, f, SLIRPNET_DROP_TCP_BLOCKED);
	if (sn->cfg.connect_check && sn->cfg.connect_check(sn->cfg.arg, (struct sockaddr *)&dst) != 0)
		return reject(sn, f, SLIRPNET_DROP_TCP_DENIED);
	for (unsigned i = 0; i < n && !fl; i++) {
		struct nat_flow *c = &sn->flows[(sn->next_entry + i) % n];
		if (c->state == NAT_FREE) {
			fl = c;
			sn->next_entry = (unsigned)(fl - sn->flows + 1) % n;
		}
	}
	if (!fl && (fl = oldest_lingering(sn)))
		flow_free(sn, fl);
	if (!fl)
		return reject(sn, f, SLIRPNET_DROP_FLOW_TABLE_FULL);
	if (!fl->registered && register_slot(sn, fl) < 0)
		return reject(sn, f, SLIRPNET_DROP_SLOT_FAILED);
	fl->state = NAT_PENDING;
	fl->guest_fin = fl->slirp_fin = false;
	fl->g = fl->s = (struct nat_seq){ 0 };
	fl->gport = f->sport;
	fl->odst = f->daddr;
	fl->odport = f->dport;
	fl->deadline_ms = sn_now_ms() + sn->cfg.half_open_ms;
	guest_index_add(sn, fl);
	return fl;
}

static void to_linger(struct slirpnet *sn, struct nat_flow *fl)
{
	fl->state = NAT_LINGER;
	fl->deadline_ms = sn_now_ms() + sn->cfg.linger_ms;
}

static bool seq_after(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

/* Highest sequence number a side has used (retransmissions and reordering never lower it),
 * and its newest acknowledgement with the window that came with it. p, f: a parsed frame. */
static void track_seq(struct nat_seq *q, const uint8_t *p, const struct frame *f)
{
	uint32_t end = f->seq + (uint32_t)f->data_len + !!(f->tcp_flags & TCPF_SYN) + !!(f->tcp_flags & TCPF_FIN);

	if (!q->seen || seq_after(end, q->nxt))
		q->nxt = end;
	q->seen = true;
	if ((f->tcp_flags & TCPF_ACK) && (!q->acked || !seq_after(q->ack, f->ack))) {
		q->ack = f->ack;
		q->wnd = rd16(p + f->l4_off + 14);
		q->acked = true;
	}
}

static void track(struct slirpnet *sn, struct nat_flow *fl, const uint8_t *p, const struct frame *f, bool from_guest)
{
	if (fl->state == NAT_LINGER)
		return;
	if (f->tcp_flags & TCPF_RST)
		return to_linger(sn, fl);
	track_seq(from_guest ? &fl->g : &fl->s, p, f);
	if (f->tcp_flags & TCPF_FIN)
		*(from_guest ? &fl->guest_fin : &fl->slirp_fin) = true;
	if (fl->guest_fin && fl->slirp_fin)
		to_linger(sn, fl);
}

/* Association is by order: the fd accepted after this slirp_input() must be the connection
 * made during it. Anything already waiting (nothing, unless a flow's accept was missed) is
 * not ours to guess about, so it is closed: slirp then resets that guest connection. */
static void drain_stale(struct slirpnet *sn)
{
	int fd;

	while ((fd = accept4(sn->listener, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(fd);
		sn->st.stale_accepts++;
	}
}

static void try_accept(struct slirpnet *sn, struct nat_flow *fl)
{
	int fd = accept4(sn->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(fl->gport),
				   .sin_addr = { htonl(sn->guest_ip) } };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(fl->odport),
				   .sin_addr = { htonl(fl->odst) } };

	if (fd < 0)
		return; /* slirp did not take that ACK as the end of the handshake; wait for another */
	if (fl->state == NAT_PENDING)
		fl->state = NAT_OPEN;
	sn->st.flows_opened++;
	if (sn->cfg.flow)
		sn->cfg.flow(sn->cfg.arg, fd, &src, &dst);
	else
		close(fd);
}

void nat_tcp_from_guest(struct slirpnet *sn, const uint8_t *p, size_t len, const struct frame *f)
{
	bool bare_syn = (f->tcp_flags & (TCPF_SYN | TCPF_ACK | TCPF_RST | TCPF_FIN)) == TCPF_SYN;
	struct nat_flow *fl = find_by_guest(sn, f->sport, f->daddr, f->dport);

	if (fl && fl->state == NAT_LINGER && bare_syn) {
		flow_free(sn, fl); /* the guest reuses the 4-tuple: a new flow on another slot */
		fl = NULL;
	}
	if (!fl) {
		/* Host forwards: slirp itself connected to the guest from the gateway; the guest's
		 * answers belong to a socket slirp already has (or get its RST). */
		if (!bare_syn && (f->daddr == sn->gateway || fwdpeer_from_guest(sn, f))) {
			slirp_input(sn->slirp, p, (int)len);
			return;
		}
		if (!bare_syn)
			return sn_drop(sn, SLIRPNET_DROP_TCP_NO_FLOW);
		if (!(fl = new_flow(sn, f)))
			return;
	}
	bool handshake_ack = fl->state == NAT_PENDING && (f->tcp_flags & TCPF_ACK) && !(f->tcp_flags & TCPF_SYN);
	memcpy(sn->scratch, p, len);
	frame_rewrite_dst(sn->scratch, f, fl->sip, fl->sport);
	track(sn, fl, p, f, true);
	if (handshake_ack)
		drain_stale(sn);
	slirp_input(sn->slirp, sn->scratch, (int)len);
	if (handshake_ack)
		try_accept(sn, fl);
}

static bool tcp_to_guest(struct slirpnet *sn, uint8_t *p, const struct frame *f)
{
	struct nat_flow *fl;

	if (f->saddr == sn->gateway)
		return true; /* host forward traffic */
	if ((f->saddr & sn->netmask) != sn->vnet) {
		if (fwdpeer_to_guest(sn, f))
			return true;
		sn_drop(sn, SLIRPNET_DROP_OUT_NO_FLOW);
		return false;
	}
	fl = find_by_slot(sn, f->saddr, f->sport, f->dport);
	if (!fl) {
		sn_drop(sn, SLIRPNET_DROP_OUT_NO_FLOW);
		return false;
	}
	frame_rewrite_src(p, f, fl->odst, fl->odport);
	track(sn, fl, p, f, false);
	return true;
}

bool nat_to_guest(struct slirpnet *sn, uint8_t *p, size_t len)
{
	struct frame f;

	if (frame_parse(p, len, &f) < 0) {
		if (f.ethertype == ETHT_ARP)
			return true;
		sn_drop(sn, SLIRPNET_DROP_OUT_NO_FLOW);
		return false;
	}
	if (f.ethertype == ETHT_ARP)
		return true;
	if (f.proto == IPP_TCP)
		return tcp_to_guest(sn, p, &f);
	if (f.proto == IPP_ICMP && f.icmp_type == 0 && f.saddr == sn->gateway)
		return true;
	/* ICMP errors may quote a slot address; nothing else is expected from restricted slirp. */
	sn_drop(sn, f.proto == IPP_ICMP ? SLIRPNET_DROP_OUT_ICMP : SLIRPNET_DROP_OUT_NO_FLOW);
	return false;
}

void nat_expire(struct slirpnet *sn, int64_t now, int64_t *next)
{
	for (unsigned i = 0; i < sn->cfg.max_flows; i++) {
		struct nat_flow *fl = &sn->flows[i];
		if (fl->state != NAT_PENDING && fl->state != NAT_LINGER)
			continue;
		if (fl->deadline_ms <= now) {
			flow_free(sn, fl);
		} else if (fl->deadline_ms < *next) {
			*next = fl->deadline_ms;
		}
	}
}

/* The sequence number for an RST that impersonates `from`: its next one, which is exactly what
 * the peer expects when nothing is in flight (the usual case: both hops are in-process). It is
 * clamped to the right edge of the window `to` last advertised, because libslirp ignores an RST
 * beyond its window (say, after the guest probed a zero window with a byte slirp dropped),
 * while it takes one at or left of its receive point. A Linux guest that finds the RST in its
 * window but not exact answers with a challenge ACK; slirp, its tcb gone, resets that with the
 * ACK's own number, which is exact, so the guest still ends up reset. */
static uint32_t rst_seq(const struct nat_seq *from, const struct nat_seq *to)
{
	uint32_t edge = to->ack + to->wnd;

	return to->acked && seq_after(from->nxt, edge) ? edge : from->nxt;
}

/* Both ends must hear it: the guest, or its connection would hang on a peer that is gone; and
 * libslirp, or it would keep retransmitting to the guest (and answer the guest's reaction with
 * RSTs of its own) until its own timers gave up. The guest's RST is queued behind whatever
 * slirp already sent, so its sequence number counts those segments. */
void slirpnet_flow_abort(struct slirpnet *sn, const struct sockaddr_in *guest_src, const struct sockaddr_in *orig_dst)
{
	uint8_t f[ETH_HDR + 40];
	struct nat_flow *fl;
	size_t n;

	if (!sn || !guest_src || !orig_dst || guest_src->sin_family != AF_INET || orig_dst->sin_family != AF_INET ||
	    ntohl(guest_src->sin_addr.s_addr) != sn->guest_ip)
		return;
	fl = find_by_guest(sn, ntohs(guest_src->sin_port), ntohl(orig_dst->sin_addr.s_addr), ntohs(orig_dst->sin_port));
	if (!fl || fl->state != NAT_OPEN)
		return;
	n = frame_build_tcp(f, sizeof(f), sn->gw_mac, sn->cfg.guest_mac, fl->odst, fl->odport, sn->guest_ip,
			    fl->gport, rst_seq(&fl->s, &fl->g), fl->g.nxt, TCPF_RST | TCPF_ACK, 0, NULL, 0);
	sn_queue_out(sn, f, n);
	n = frame_build_tcp(f, sizeof(f), sn->cfg.guest_mac, sn->gw_mac, sn->guest_ip, fl->gport, fl->sip,
			    fl->sport, rst_seq(&fl->g, &fl->s), fl->s.nxt, TCPF_RST | TCPF_ACK, 0, NULL, 0);
	slirp_input(sn->slirp, f, (int)n);
	to_linger(sn, fl);
	sn->st.flows_aborted++;
}
