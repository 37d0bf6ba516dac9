/* slirpnet/internal.h - state shared by the files of slirpnet/ (not part of the API). */
#ifndef ML_SLIRPNET_INTERNAL_H
#define ML_SLIRPNET_INTERNAL_H

#include <slirp/libslirp.h>
#include <stdbool.h>

#include "slirpnet/frame.h"
#include "slirpnet/slirpnet.h"

#define OUTQ_MAX 4096     /* frames queued for the guest */
/* ... and their bytes (cfg.out_queue_bytes): with a 64 KiB MTU, 4096 frames would be 256 MiB
 * of a guest that does not drain. 4 MiB holds ~2800 full 1500-byte frames, more than
 * libslirp sends in one round. */
#define OUTQ_BYTES_DEFAULT ((size_t)4 << 20)
#define DNS_PENDING_MAX 256
#define DNS_QUESTION_MAX 264  /* name (<= 255) + type + class, rounded */
#define DNS_RAND_IDS 32

enum nat_state { NAT_FREE, NAT_PENDING, NAT_OPEN, NAT_LINGER };

/* What one side of a flow last sent: the next sequence number it will use, and the last
 * acknowledgement and window it advertised (no window scaling: libslirp never offers it). */
struct nat_seq {
	uint32_t nxt, ack;
	uint16_t wnd;
	bool seen, acked;
};

/* One guest TCP flow: guest port + original destination <-> slot address inside vnetwork. */
struct nat_flow {
	enum nat_state state;
	uint16_t gport;        /* guest source port (the source address is always the guest's) */
	uint32_t odst;         /* original destination, host order */
	uint16_t odport;
	uint32_t sip;          /* slot registered with slirp_add_unix */
	uint16_t sport;
	bool registered;       /* sip:sport is a guestfwd of this entry (kept while FREE too) */
	bool guest_fin, slirp_fin;
	struct nat_seq g, s;   /* sent by the guest, by libslirp: for forging RSTs (abort) */
	int64_t deadline_ms;   /* PENDING: half-open reap; LINGER: forget */
	int next_g, next_s;    /* hash chains (entry index, -1 = end) */
};

struct dns_pending {
	bool used;
	int fd;                /* this query's own socket, connected to the server */
	int pidx;              /* its slot in the last poll array, -1 = none */
	uint16_t up_id, guest_id;
	uint16_t gport;
	uint32_t asked;        /* address the guest sent the query to: the reply comes from it */
	int64_t deadline_ms;
	size_t qlen;
	uint8_t question[DNS_QUESTION_MAX];
};

struct sn_timer {
	SlirpTimerCb cb;
	void *opaque;
	int64_t expire_ms;     /* -1: not armed */
	struct sn_timer *next;
};

struct outq {
	uint8_t *frame[OUTQ_MAX];
	size_t len[OUTQ_MAX];
	size_t head, count, bytes;
};

/* A TCP connection libslirp opened to the guest for a host forward, from a non-loopback client:
 * libslirp keeps that client's real address as the source (only loopback clients become the
 * gateway), so the guest answers it by address, outside the virtual network. */
#define FWD_PEERS_MAX 256
struct fwd_peer {
	uint32_t addr;         /* the client, host order; 0 = unused */
	uint16_t port, gport;  /* client port, guest port */
	int64_t last_ms;
};

struct slirpnet {
	struct slirpnet_config cfg;
	uint32_t guest_ip, gateway, dns_alias, netmask, vnet; /* host order */
	uint8_t gw_mac[6];
	Slirp *slirp;
	struct slirpnet_stats st;
	struct outq out;
	uint8_t *scratch;      /* 2 x scratch_cap: [0] guest frame being rewritten, [cap] slirp output */
	size_t scratch_cap;

	/* flows */
	char dir[128];
	char sock_path[160];
	bool own_dir;
	char *dir_link;        /* cfg.runtime_dir when it is a symlink to dir (too long a path) */
	int listener;
	struct nat_flow *flows;
	uint32_t next_slot;
	unsigned next_entry;   /* round-robin start for the next free entry */
	int *hguest, *hslot;   /* hash heads, hmask + 1 of each */
	unsigned hmask;

	struct fwd_peer fwd_peers[FWD_PEERS_MAX];

	/* DNS */
	struct dns_pending dns[DNS_PENDING_MAX];
	uint16_t dns_rand[DNS_RAND_IDS];
	size_t dns_rand_left;

	/* polling */
	struct pollfd *pfds;
	size_t npfds, pfds_cap;
	struct sn_timer *timers;
};

int64_t sn_now_ms(void);
void sn_drop(struct slirpnet *sn, enum slirpnet_drop reason);
/* Queues a copy of a frame for the guest (counted and dropped when the queue is full). */
void sn_queue_out(struct slirpnet *sn, const uint8_t *frame, size_t len);

/* fwdpeer.c: host-forward connections from non-loopback clients */
/* A frame libslirp sends the guest from outside the virtual network: true if it belongs to a
 * host-forward connection (a SYN starts one), false to drop it. */
bool fwdpeer_to_guest(struct slirpnet *sn, const struct frame *f);
/* A non-SYN segment from the guest to outside the virtual network with no NAT flow: true if it
 * answers a host-forward connection (then it goes to libslirp as it is). */
bool fwdpeer_from_guest(struct slirpnet *sn, const struct frame *f);

/* dns.c */
bool dns_wants(const struct slirpnet *sn, const struct frame *f);
void dns_from_guest(struct slirpnet *sn, const uint8_t *p, const struct frame *f);
void dns_close(struct slirpnet *sn);
/* Adds each pending query's socket through add (slirpnet's poll-array callback). */
void dns_poll_fill(struct slirpnet *sn, int (*add)(int fd, int events, void *opaque));
/* fds/n: the whole array of the last fill, revents set. */
void dns_poll_done(struct slirpnet *sn, const struct pollfd *fds, size_t n);
void dns_expire(struct slirpnet *sn, int64_t now, int64_t *next);

/* nat.c */
int nat_open(struct slirpnet *sn, struct ml_err *e);
void nat_close(struct slirpnet *sn);
void nat_tcp_from_guest(struct slirpnet *sn, const uint8_t *p, size_t len, const struct frame *f);
/* Frame from libslirp to the guest: rewrites slot sources back; false = drop it. */
bool nat_to_guest(struct slirpnet *sn, uint8_t *p, size_t len);
void nat_expire(struct slirpnet *sn, int64_t now, int64_t *next);

#endif
