/* slirpnet/fwdpeer.c - host forwards (-p) reached from a non-loopback client.
 *
 * libslirp presents a forwarded connection to the guest as coming from the client's own
 * address unless the client is on loopback (then it is the gateway). Such a connection is not
 * one of our NAT flows: its frames come from libslirp with an outside source, and the guest
 * answers that outside address. Both would otherwise be dropped (out_no_flow, tcp_no_flow) and
 * the client would hang. Only libslirp can start one (its SYN to the guest: in restricted
 * mode the only sockets it opens are the forwards' listeners), so the table is filled from the
 * output side; the guest's segments are let through only when they answer an entry. A bare
 * SYN from the guest to that address is an ordinary new flow, checked by the policy.
 * Bounded: FWD_PEERS_MAX entries, the least recently used one gives way. */
#include <string.h>

#include "slirpnet/internal.h"

static struct fwd_peer *find(struct slirpnet *sn, uint32_t addr, uint16_t port, uint16_t gport)
{
	for (size_t i = 0; i < FWD_PEERS_MAX; i++) {
		struct fwd_peer *p = &sn->fwd_peers[i];
		if (p->addr == addr && p->port == port && p->gport == gport)
			return p;
	}
	return NULL;
}

static struct fwd_peer *least_recent(struct slirpnet *sn)
{
	struct fwd_peer *best = &sn->fwd_peers[0];

	for (size_t i = 0; i < FWD_PEERS_MAX; i++) {
		struct fwd_peer *p = &sn->fwd_peers[i];
		if (!p->addr)
			return p;
		if (p->last_ms < best->last_ms)
			best = p;
	}
	return best;
}

static void touch(struct fwd_peer *p, const struct frame *f)
{
	p->last_ms = sn_now_ms();
	if (f->tcp_flags & TCPF_RST)
		p->addr = 0; /* over; a late segment is dropped, which is what TCP expects after RST */
}

bool fwdpeer_to_guest(struct slirpnet *sn, const struct frame *f)
{
	struct fwd_peer *p = find(sn, f->saddr, f->sport, f->dport);

	if (!p && (f->tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN) {
		p = least_recent(sn);
		*p = (struct fwd_peer){ .addr = f->saddr, .port = f->sport, .gport = f->dport };
	}
	if (!p)
		return false;
	touch(p, f);
	return true;
}

bool fwdpeer_from_guest(struct slirpnet *sn, const struct frame *f)
{
	struct fwd_peer *p = find(sn, f->daddr, f->dport, f->sport);

	if (!p)
		return false;
	touch(p, f);
	return true;
}
