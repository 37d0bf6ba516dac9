/* slirpnet/slirpnet.c - the front door: creation, frame dispatch by protocol, the queue of
 * frames for the guest, and the event-loop glue around libslirp (poll fds, timers, clock). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "slirpnet/internal.h"

static const char *const drop_names[SLIRPNET_DROP__MAX] = {
	"eth_short", "too_big", "ethertype", "arp_bad", "ipv6", "ip_header", "ip_csum", "ip_frag",
	"ip_src", "ip_proto", "tcp_header", "tcp_csum", "udp_header", "udp_csum", "icmp_header",
	"icmp_csum", "icmp_policy", "udp_policy", "dhcp", "tcp_no_flow", "tcp_blocked", "tcp_denied",
	"flow_table_full", "slot_failed", "dns_query", "dns_table_full", "dns_timeout", "dns_reply",
	"dns_send", "out_queue_full", "out_no_flow", "out_icmp",
};

const char *slirpnet_drop_name(enum slirpnet_drop reason)
{
	return (unsigned)reason < SLIRPNET_DROP__MAX ? drop_names[reason] : "?";
}

int64_t sn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sn_drop(struct slirpnet *sn, enum slirpnet_drop reason)
{
	sn->st.drops[reason]++;
}

void sn_queue_out(struct slirpnet *sn, const uint8_t *frame, size_t len)
{
	struct outq *q = &sn->out;
	uint8_t *copy;

	if (q->count == OUTQ_MAX || q->bytes + len > sn->cfg.out_queue_bytes || !(copy = malloc(len))) {
		sn_drop(sn, SLIRPNET_DROP_OUT_QUEUE_FULL);
		return;
	}
	memcpy(copy, frame, len);
	size_t slot = (q->head + q->count) % OUTQ_MAX;
	q->frame[slot] = copy;
	q->len[slot] = len;
	q->count++;
	q->bytes += len;
}

ssize_t slirpnet_output_frame(struct slirpnet *sn, uint8_t *buf, size_t cap)
{
	struct outq *q = &sn->out;
	size_t len;

	if (!q->count)
		return 0;
	len = q->len[q->head];
	if (len > cap)
		return -EMSGSIZE;
	memcpy(buf, q->frame[q->head], len);
	free(q->frame[q->head]);
	q->head = (q->head + 1) % OUTQ_MAX;
	q->count--;
	q->bytes -= len;
	sn->st.frames_out++;
	return (ssize_t)len;
}

static void outq_clear(struct outq *q)
{
	while (q->count) {
		free(q->frame[q->head]);
		q->head = (q->head + 1) % OUTQ_MAX;
		q->count--;
	}
	q->bytes = 0;
}

/* ---- libslirp callbacks ---- */

/* Only queues: the caller's loop delivers, so nothing re-enters slirp_input from here. */
static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirpnet *sn = opaque;

	/* The second half of scratch: the first may still hold the frame slirp_input is reading. */
	uint8_t *out = sn->scratch + sn->scratch_cap;

	if (len > sn->scratch_cap)
		return (ssize_t)len;
	memcpy(out, buf, len);
	if (nat_to_guest(sn, out, len))
		sn_queue_out(sn, out, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	ml_debug("slirp: guest error: %s", msg);
}

static int64_t cb_clock_ns(void *opaque)
{
	(void)opaque;
	return sn_now_ms() * 1000000;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct slirpnet *sn = opaque;
	struct sn_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cb = cb;
	t->opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = sn->timers;
	sn->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirpnet *sn = opaque;

	for (struct sn_timer **pp = &sn->timers; *pp; pp = &(*pp)->next)
		if (*pp == timer) {
			*pp = (*pp)->next;
			free(timer);
			return;
		}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct sn_timer *)timer)->expire_ms = expire_ms;
}

static void cb_noop_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	(void)opaque; /* fd-backed flows only: slirp's own poll fds carry every wake-up */
}

static const SlirpCb slirp_cbs = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_noop_fd,
	.unregister_poll_fd = cb_noop_fd,
	.notify = cb_notify,
};

/* ---- creation ---- */

static uint32_t addr_or(struct in_addr a, uint32_t dflt)
{
	return a.s_addr ? ntohl(a.s_addr) : dflt;
}

static void apply_defaults(struct slirpnet *sn)
{
	struct slirpnet_config *c = &sn->cfg;

	sn->guest_ip = addr_or(c->guest_ip, 0x0a00020f);
	sn->gateway = addr_or(c->gateway, 0x0a000202);
	sn->dns_alias = addr_or(c->dns_alias, 0x0a000203);
	sn->netmask = addr_or(c->netmask, 0xffffff00);
	sn->vnet = sn->gateway & sn->netmask;
	if (!c->mtu)
		c->mtu = 1500;
	if (!c->dns_timeout_ms)
		c->dns_timeout_ms = 5000;
	if (!c->max_flows)
		c->max_flows = 1024;
	if (!c->linger_ms)
		c->linger_ms = 10000;
	if (!c->half_open_ms)
		c->half_open_ms = 75000;
	if (!c->out_queue_bytes)
		c->out_queue_bytes = OUTQ_BYTES_DEFAULT;
	if (c->n_dns > SLIRPNET_MAX_DNS)
		c->n_dns = SLIRPNET_MAX_DNS;
	/* libslirp's address for vhost: 52:55 followed by the IPv4 address. */
	sn->gw_mac[0] = 0x52;
	sn->gw_mac[1] = 0x55;
	wr32(sn->gw_mac + 2, sn->gateway);
}

/* slirp only sends to a guest whose MAC it has learned from ARP; teach it now, so the first
 * SYN-ACK is not lost to an ARP round trip the guest never asked for. */
static void prime_arp(struct slirpnet *sn)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t f[ETH_HDR + 28];

	frame_build_arp_reply(f, sizeof(f), sn->cfg.guest_mac, sn->guest_ip, bcast, sn->gateway);
	wr16(f + ETH_HDR + 6, 1); /* a request, from the guest, for the gateway */
	memset(f + ETH_HDR + 18, 0, 6);
	slirp_input(sn->slirp, f, (int)sizeof(f));
	outq_clear(&sn->out);
}

static int start_slirp(struct slirpnet *sn, struct ml_err *e)
{
	SlirpConfig sc = {
		.version = 4,
		.restricted = 1,
		.in_enabled = true,
		.vnetwork = { htonl(sn->vnet) },
		.vnetmask = { htonl(sn->netmask) },
		.vhost = { htonl(sn->gateway) },
		.in6_enabled = false,
		.vdhcp_start = { htonl(sn->guest_ip) },
		.vnameserver = { htonl(sn->dns_alias) },
		.if_mtu = sn->cfg.mtu,
		.if_mru = sn->cfg.mtu,
		.disable_host_loopback = true,
		.disable_dns = true,
		.disable_dhcp = true,
	};

	sn->slirp = slirp_new(&sc, &slirp_cbs, sn);
	if (!sn->slirp)
		return ml_err_set(e, -EINVAL, "slirp_new refused the network configuration");
	prime_arp(sn);
	return 0;
}

int slirpnet_new(const struct slirpnet_config *cfg, struct slirpnet **out, struct ml_err *e)
{
	struct slirpnet *sn = calloc(1, sizeof(*sn));
	int r;

	if (!sn)
		return ml_err_set(e, -ENOMEM, "slirpnet: out of memory");
	sn->cfg = *cfg;
	sn->listener = -1;
	apply_defaults(sn);
	if (sn->cfg.mtu < 576 || sn->cfg.mtu > 65521) {
		free(sn);
		return ml_err_set(e, -EINVAL, "slirpnet: mtu %u out of range 576-65521", cfg->mtu);
	}
	sn->scratch_cap = ETH_HDR + 65535;
	sn->scratch = malloc(2 * sn->scratch_cap);
	sn->flows = calloc(sn->cfg.max_flows, sizeof(*sn->flows));
	if (!sn->scratch || !sn->flows)
		r = ml_err_set(e, -ENOMEM, "slirpnet: out of memory");
	else if ((r = nat_open(sn, e)) == 0)
		r = start_slirp(sn, e);
	if (r < 0) {
		slirpnet_free(sn);
		return r;
	}
	*out = sn;
	return 0;
}

void slirpnet_free(struct slirpnet *sn)
{
	if (!sn)
		return;
	if (sn->slirp)
		slirp_cleanup(sn->slirp); /* frees its timers through cb_timer_free */
	while (sn->timers)
		cb_timer_free(sn->timers, sn);
	nat_close(sn);
	dns_close(sn);
	outq_clear(&sn->out);
	free(sn->flows);
	free(sn->scratch);
	free(sn->pfds);
	free(sn);
}

/* Port 0: libslirp does not tell which port its listener got. So a probe socket binds
 * host_addr:0 with SO_REUSEADDR and holds the port the kernel chose while libslirp binds it
 * (libslirp sets SO_REUSEADDR too, and a bound socket that does not listen does not conflict
 * with one that does), so no other program can take it in between. */
static int probe_port(struct in_addr addr, int *probe_fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = addr };
	socklen_t al = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*probe_fd = fd;
	return ntohs(a.sin_port);
}

static int hostfwd_err(struct ml_err *e, int err, struct in_addr addr, int port)
{
	char a[INET_ADDRSTRLEN], why[128];

	inet_ntop(AF_INET, &addr, a, sizeof(a));
	/* Go's wording, as the upstream CLI and SDKs print and match it: lower-case reason. */
	snprintf(why, sizeof(why), "%s", strerror(err));
	why[0] = (char)tolower((unsigned char)why[0]);
	return ml_err_set(e, -err, "listen tcp %s:%d: bind: %s", a, port, why);
}

int slirpnet_add_hostfwd(struct slirpnet *sn, struct in_addr host_addr, int host_port, int guest_port,
			 int *bound_port, struct ml_err *e)
{
	struct in_addr guest = { htonl(sn->guest_ip) };
	int probe = -1, port = host_port, r;

	if (port == 0 && (port = probe_port(host_addr, &probe)) < 0)
		return hostfwd_err(e, -port, host_addr, 0);
	errno = 0;
	r = slirp_add_hostfwd(sn->slirp, 0, host_addr, port, guest, guest_port);
	r = r < 0 ? (errno ? errno : EADDRINUSE) : 0;
	if (probe >= 0)
		close(probe);
	if (r)
		return hostfwd_err(e, r, host_addr, port);
	*bound_port = port;
	return 0;
}

int slirpnet_remove_hostfwd(struct slirpnet *sn, struct in_addr host_addr, int bound_port)
{
	return slirp_remove_hostfwd(sn->slirp, 0, host_addr, bound_port) < 0 ? -ENOENT : 0;
}

/* ---- guest -> host ---- */

static void input_ipv4(struct slirpnet *sn, const uint8_t *p, const struct frame *f)
{
	if (f->proto == IPP_UDP && f->dport == 67)
		return sn_drop(sn, SLIRPNET_DROP_DHCP);
	if (f->saddr != sn->guest_ip)
		return sn_drop(sn, SLIRPNET_DROP_IP_SRC);
	switch (f->proto) {
	case IPP_UDP:
		if (dns_wants(sn, f))
			return dns_from_guest(sn, p, f);
		return sn_drop(sn, SLIRPNET_DROP_UDP_POLICY);
	case IPP_ICMP:
		/* slirp answers echo to vhost itself even when restricted; nothing leaves the host. */
		if (f->icmp_type == 8 && f->daddr == sn->gateway) {
			slirp_input(sn->slirp, p, (int)(ETH_HDR + f->ip_len));
			return;
		}
		return sn_drop(sn, SLIRPNET_DROP_ICMP_POLICY);
	default:
		return nat_tcp_from_guest(sn, p, ETH_HDR + f->ip_len, f);
	}
}

void slirpnet_input_frame(struct slirpnet *sn, const uint8_t *frame, size_t len)
{
	struct frame f;
	int r;

	sn->st.frames_in++;
	if (len > ETH_HDR + sn->cfg.mtu)
		return sn_drop(sn, SLIRPNET_DROP_TOO_BIG);
	r = frame_parse(frame, len, &f);
	if (r < 0)
		return sn_drop(sn, (enum slirpnet_drop)(-r - 1));
	if (f.ethertype == ETHT_ARP) {
		if (f.arp_spa != sn->guest_ip)
			return sn_drop(sn, SLIRPNET_DROP_ARP_BAD);
		slirp_input(sn->slirp, frame, (int)(ETH_HDR + 28));
		return;
	}
	input_ipv4(sn, frame, &f);
}

/* ---- event loop ---- */

static int cb_add_poll(int fd, int events, void *opaque)
{
	struct slirpnet *sn = opaque;
	short ev = 0;

	if (sn->npfds == sn->pfds_cap) {
		size_t cap = sn->pfds_cap ? sn->pfds_cap * 2 : 64;
		struct pollfd *n = realloc(sn->pfds, cap * sizeof(*n));
		if (!n)
			return -1;
		sn->pfds = n;
		sn->pfds_cap = cap;
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	sn->pfds[sn->npfds] = (struct pollfd){ .fd = fd, .events = ev };
	return (int)sn->npfds++;
}

static int cb_get_revents(int idx, void *opaque)
{
	struct slirpnet *sn = opaque;
	short rev;
	int r = 0;

	if (idx < 0 || (size_t)idx >= sn->npfds)
		return 0;
	rev = sn->pfds[idx].revents;
	if (rev & POLLIN)
		r |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		r |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		r |= SLIRP_POLL_PRI;
	if (rev & (POLLERR | POLLNVAL))
		r |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		r |= SLIRP_POLL_HUP;
	return r;
}

static void run_timers(struct slirpnet *sn, int64_t now, int64_t *next)
{
	bool fired;

	do { /* a callback may re-arm or free timers, so rescan after each one */
		fired = false;
		for (struct sn_timer *t = sn->timers; t; t = t->next) {
			if (t->expire_ms < 0)
				continue;
			if (t->expire_ms <= now) {
				t->expire_ms = -1;
				t->cb(t->opaque);
				fired = true;
				break;
			}
			if (t->expire_ms < *next)
				*next = t->expire_ms;
		}
	} while (fired);
}

static int64_t run_expiries(struct slirpnet *sn)
{
	int64_t now = sn_now_ms(), next = INT64_MAX;

	run_timers(sn, now, &next);
	dns_expire(sn, now, &next);
	nat_expire(sn, now, &next);
	return next == INT64_MAX ? -1 : (next > now ? next - now : 0);
}

void slirpnet_poll_fill(struct slirpnet *sn, struct pollfd **fds, size_t *n, int *timeout_ms)
{
	uint32_t t = *timeout_ms < 0 ? UINT32_MAX : (uint32_t)*timeout_ms;
	int64_t ours = run_expiries(sn);

	sn->npfds = 0;
	slirp_pollfds_fill(sn->slirp, &t, cb_add_poll, sn);
	dns_poll_fill(sn, cb_add_poll);
	if (ours >= 0 && (t == UINT32_MAX || (uint32_t)ours < t))
		t = (uint32_t)ours;
	*timeout_ms = t == UINT32_MAX ? -1 : (t > INT32_MAX ? INT32_MAX : (int)t);
	*fds = sn->pfds;
	*n = sn->npfds;
}

void slirpnet_poll_done(struct slirpnet *sn, const struct pollfd *fds, size_t n, int poll_error)
{
	for (size_t i = 0; i < sn->npfds; i++)
		sn->pfds[i].revents = i < n && !poll_error ? fds[i].revents : 0;
	slirp_pollfds_poll(sn->slirp, poll_error, cb_get_revents, sn);
	dns_poll_done(sn, sn->pfds, sn->npfds);
	run_expiries(sn);
}

void slirpnet_stats(const struct slirpnet *sn, struct slirpnet_stats *st)
{
	*st = sn->st;
	st->flows_active = st->flows_pending = 0;
	for (unsigned i = 0; i < sn->cfg.max_flows; i++) {
		st->flows_active += sn->flows[i].state != NAT_FREE;
		st->flows_pending += sn->flows[i].state == NAT_PENDING;
	}
	st->out_queued = sn->out.count;
	st->out_queued_bytes = sn->out.bytes;
	st->bytes_per_flow = sizeof(struct nat_flow);
}

const char *slirpnet_libslirp_version(void) { return slirp_version_string(); }
