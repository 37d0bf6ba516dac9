/* slirpnet/slirpnet.h - guest Ethernet frames in, one host fd per guest TCP flow out.
 *
 * The whole public API of the frame layer. One struct slirpnet per VM. It is single-threaded:
 * every function below must be called from the one thread that runs the caller's event loop
 * (libslirp itself is not thread-safe). The fds handed to the flow callback are plain sockets
 * and may be moved to any thread.
 *
 * Driving it:
 *   for (;;) {
 *           slirpnet_poll_fill(sn, &pfds, &n, &timeout);     // add the caller's own fds too
 *           poll(...);
 *           slirpnet_poll_done(sn, pfds, n, poll_failed);      // same slice, revents filled
 *           while (a frame from the engine) slirpnet_input_frame(sn, f, len);
 *           while ((len = slirpnet_output_frame(sn, buf, sizeof(buf))) > 0) send to engine;
 *   }
 * Frames for the guest are queued inside and only leave through slirpnet_output_frame(), so
 * nothing re-enters libslirp from a callback.
 */
#ifndef ML_SLIRPNET_H
#define ML_SLIRPNET_H

#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "base/err.h"
#include "dnswire/dnswire.h"

struct slirpnet;

#define SLIRPNET_MAX_DNS 4

struct slirpnet_config {
	uint8_t guest_mac[6];
	struct in_addr guest_ip;   /* default 10.0.2.15 (all addresses: 0 = default) */
	struct in_addr gateway;    /* default 10.0.2.2: libslirp's vhost */
	struct in_addr dns_alias;  /* default 10.0.2.3: UDP forwarded upstream; TCP/53 a flow */
	struct in_addr netmask;    /* default 255.255.255.0; the virtual network is gateway&mask */
	unsigned mtu;              /* default 1500; frames longer than mtu + 14 are dropped */
	/* Upstream DNS servers (port included, normally 53). Guest queries to the alias or to one
	 * of these addresses on port 53 are forwarded, from the host, to dns[0], then dns[1]... */
	struct sockaddr_in dns[SLIRPNET_MAX_DNS];
	size_t n_dns;
	unsigned dns_timeout_ms;   /* default 5000: a forwarded query is forgotten after this */
	unsigned max_flows;        /* default 1024 concurrent TCP flows (incl. lingering ones) */
	unsigned linger_ms;        /* default 10000: keep a closed flow's NAT entry (TIME_WAIT) */
	unsigned half_open_ms;     /* default 75000: a SYN never followed by an ACK is reaped */
	/* default 4 MiB: frames queued for the guest, in bytes (and at most 4096 of them); a
	 * guest that does not drain its NIC loses the rest (counted), it cannot grow the queue */
	size_t out_queue_bytes;
	/* A private directory (mode 0700) for the flow listener socket, made if missing and
	 * removed (when empty) in slirpnet_free. When "<dir>/flow.sock" would not fit a
	 * sockaddr_un, the socket goes into a `slirpnet-*` temp dir as below and runtime_dir is
	 * made a symlink to it, so whoever cleans runtime_dir's parent after a crash still finds
	 * it (matchlock gc: rpc/vmstate.c). NULL: slirpnet makes one with mkdtemp under $TMPDIR
	 * or /tmp. */
	const char *runtime_dir;

	/* Policy for a new guest TCP connection to dst (an AF_INET sockaddr_in with the guest's
	 * original destination). Returns 0 to allow, -EACCES to deny (the guest gets RST|ACK and
	 * no fd is created). Called before libslirp sees the SYN. NULL = allow everything that
	 * passes the built-in blocks (see README: link-local, loopback, multicast, the virtual
	 * network except the gateway and port 53 of dns_alias are always refused). TCP to
	 * dns_alias:53 comes here (and then to flow) with that address: the handler maps it to a
	 * real server. */
	int (*connect_check)(void *arg, const struct sockaddr *dst);
	/* One call per allowed guest TCP flow, after the guest's handshake completed: fd is a
	 * nonblocking AF_UNIX stream socket, now owned by the callee. read()==0: the guest sent
	 * FIN; shutdown(SHUT_WR): FIN to the guest; not reading: zero window to the guest;
	 * close(): the guest's connection is ended. */
	void (*flow)(void *arg, int fd, const struct sockaddr_in *guest_src, const struct sockaddr_in *orig_dst);
	/* Called for each UDP DNS query from the guest that is well formed (dnswire_query_parse),
	 * before anything else happens to it; server is the configured server it would go to.
	 * Returns 0 to go on (forwarded, or AAAA answered empty), < 0 to answer REFUSED at once
	 * with nothing sent upstream. NULL = every query goes on. */
	int (*dns_check)(void *arg, const struct dnswire_query *q, const struct sockaddr_in *server);
	/* Called for each upstream UDP DNS reply relayed to the guest that answers an A/IN
	 * question with addresses or CNAMEs (dnswire_parse_answer: a->name is the question,
	 * a->addrs the A records owned by it or reached through CNAMEs of the same answer, at most
	 * 8 followed, a->chain those CNAME targets). Called before the reply is queued for the
	 * guest. Malformed replies are still relayed but reported to nobody. NULL = not wanted. */
	void (*dns_answer)(void *arg, const struct dnswire_answer *a);
	void *arg;
};

/* Why a frame was dropped. Every drop is counted in slirpnet_stats.drops[reason]. */
enum slirpnet_drop {
	SLIRPNET_DROP_ETH_SHORT,      /* shorter than an Ethernet header */
	SLIRPNET_DROP_TOO_BIG,        /* longer than mtu + 14 */
	SLIRPNET_DROP_ETHERTYPE,      /* not ARP/IPv4/IPv6 (VLAN tags included) */
	SLIRPNET_DROP_ARP_BAD,        /* truncated or not Ethernet/IPv4 ARP */
	SLIRPNET_DROP_IPV6,           /* guest IPv6 is off */
	SLIRPNET_DROP_IP_HEADER,      /* truncated, version != 4, IHL < 5, lengths inconsistent */
	SLIRPNET_DROP_IP_CSUM,
	SLIRPNET_DROP_IP_FRAG,        /* fragments are never reassembled */
	SLIRPNET_DROP_IP_SRC,         /* source is not the guest's address */
	SLIRPNET_DROP_IP_PROTO,       /* raw IP protocols other than TCP/UDP/ICMP */
	SLIRPNET_DROP_TCP_HEADER,     /* truncated, data offset out of bounds */
	SLIRPNET_DROP_TCP_CSUM,
	SLIRPNET_DROP_UDP_HEADER,
	SLIRPNET_DROP_UDP_CSUM,
	SLIRPNET_DROP_ICMP_HEADER,
	SLIRPNET_DROP_ICMP_CSUM,
	SLIRPNET_DROP_ICMP_POLICY,    /* ICMP other than echo request to the gateway */
	SLIRPNET_DROP_UDP_POLICY,     /* UDP other than DNS */
	SLIRPNET_DROP_DHCP,           /* the guest is configured statically */
	SLIRPNET_DROP_TCP_NO_FLOW,    /* a segment of no known flow that is not a bare SYN */
	SLIRPNET_DROP_TCP_BLOCKED,    /* SYN to an always-blocked destination (RST sent) */
	SLIRPNET_DROP_TCP_DENIED,     /* SYN denied by connect_check (RST sent) */
	SLIRPNET_DROP_FLOW_TABLE_FULL,/* too many flows (RST sent) */
	SLIRPNET_DROP_SLOT_FAILED,    /* libslirp refused every slot we offered (RST sent) */
	SLIRPNET_DROP_DNS_QUERY,      /* malformed or unsupported DNS query */
	SLIRPNET_DROP_DNS_TABLE_FULL, /* too many queries in flight */
	SLIRPNET_DROP_DNS_TIMEOUT,    /* no upstream answer in time */
	SLIRPNET_DROP_DNS_REPLY,      /* upstream reply from a stranger, unknown id, or mismatch */
	SLIRPNET_DROP_DNS_SEND,       /* sendto() upstream failed */
	SLIRPNET_DROP_OUT_QUEUE_FULL, /* the guest does not drain its queue (4096 frames or out_queue_bytes) */
	SLIRPNET_DROP_OUT_NO_FLOW,    /* libslirp sent from a slot that is no longer mapped */
	SLIRPNET_DROP_OUT_ICMP,       /* ICMP from libslirp (could quote a slot address) */
	SLIRPNET_DROP__MAX
};

struct slirpnet_stats {
	uint64_t frames_in, frames_out;
	uint64_t drops[SLIRPNET_DROP__MAX];
	uint64_t flows_opened;     /* fds handed to the flow callback */
	uint64_t flows_aborted;    /* flows ended by slirpnet_flow_abort */
	uint64_t linger_evicted;   /* closed flows' entries reused early because the table was full */
	uint64_t flows_active;     /* NAT entries now in use (pending, open or lingering) */
	uint64_t flows_pending;    /* SYN seen, handshake not yet complete */
	uint64_t dns_forwarded, dns_answered, dns_aaaa_empty;
	uint64_t dns_refused;      /* answered REFUSED because dns_check said no */
	uint64_t slot_retries;     /* slirp_add_unix returned -1 and another slot was tried */
	uint64_t stale_accepts;    /* connections on the listener that no flow claimed (closed) */
	uint64_t slots_registered; /* guestfwd slots (one per table entry ever used, never removed) */
	uint64_t out_queued;       /* frames waiting for slirpnet_output_frame */
	uint64_t out_queued_bytes; /* their bytes (at most out_queue_bytes) */
	size_t bytes_per_flow;     /* this module's memory per NAT entry */
};

/* Creates the stack. cfg is copied. Returns 0 or a negative errno with e set. */
int slirpnet_new(const struct slirpnet_config *cfg, struct slirpnet **out, struct ml_err *e);
/* Frees everything; fds already handed to the flow callback stay open (they are the callee's). */
void slirpnet_free(struct slirpnet *sn);

/* One Ethernet frame from the guest (without the engine's length prefix). Never fails: a bad
 * or forbidden frame is counted and dropped. */
void slirpnet_input_frame(struct slirpnet *sn, const uint8_t *frame, size_t len);

/* Pops the next frame for the guest into buf. Returns its length, 0 if none is queued, or
 * -EMSGSIZE if cap is too small (the frame stays queued; mtu + 14 always suffices). */
ssize_t slirpnet_output_frame(struct slirpnet *sn, uint8_t *buf, size_t cap);

/* Fills *fds and *n with the fds to poll (the array is owned by sn and valid until the next call)
 * and lowers *timeout_ms (-1 = infinite) to the next timer of slirp, DNS or the flow reaper. */
void slirpnet_poll_fill(struct slirpnet *sn, struct pollfd **fds, size_t *n, int *timeout_ms);
/* After poll(): fds/n are the slice from poll_fill with revents set (poll_error: poll failed).
 * Runs libslirp's socket I/O, DNS replies and all expired timers. */
void slirpnet_poll_done(struct slirpnet *sn, const struct pollfd *fds, size_t n, int poll_error);

/* Ends a guest flow abortively: the guest gets an RST (from orig_dst, at the sequence number it
 * expects) and libslirp drops its side of the connection too, so nothing more is sent for it;
 * the NAT entry then lingers as after any RST. For the flow handler when the guest must see a
 * reset (upstream refused, unreachable or reset); call it before closing the flow's fd. It may
 * be called from the flow callback. guest_src/orig_dst as given to the flow callback; a flow
 * that is unknown or already closed (RST seen, or FIN both ways) is left alone. */
void slirpnet_flow_abort(struct slirpnet *sn, const struct sockaddr_in *guest_src,
			 const struct sockaddr_in *orig_dst);

/* Forwards host_addr:host_port (TCP) to the guest's guest_port, through libslirp's listener.
 * host_port 0: a free port is chosen (*bound_port says which; it is also set otherwise).
 * Returns 0 or the bind/listen errno negated (e says "listen tcp A:P: bind: <reason>"). */
int slirpnet_add_hostfwd(struct slirpnet *sn, struct in_addr host_addr, int host_port, int guest_port,
			 int *bound_port, struct ml_err *e);
/* Closes the listener of a forward added with slirpnet_add_hostfwd (by its bound port);
 * connections already accepted go on. Returns 0 or -ENOENT. */
int slirpnet_remove_hostfwd(struct slirpnet *sn, struct in_addr host_addr, int bound_port);

void slirpnet_stats(const struct slirpnet *sn, struct slirpnet_stats *st);
const char *slirpnet_drop_name(enum slirpnet_drop reason);
/* The version of the libslirp we run on ("4.7.0"), for `diagnose`. */
const char *slirpnet_libslirp_version(void);

#endif
