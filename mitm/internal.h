/* mitm/internal.h - state shared by the files of mitm/ (not part of the API; the unit tests
 * include it for the clock hook and the limits). */
#ifndef ML_MITM_INTERNAL_H
#define ML_MITM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "mitm/mitm.h"

#define MITM_BUF_CAP (64u * 1024u)  /* per direction, per flow */
#define NAMES_MAX 4096              /* learned (name, address) pairs; oldest evicted */
#define NAMES_BUCKETS 4096          /* power of two */
#define NAMES_TTL_MIN_S 60
#define NAMES_TTL_MAX_S 86400
#define NAMES_FOREVER INT64_MAX     /* --add-host entries */
#define NAME_MAX_LEN 255

/* The clock behind TTLs and flow timeouts (monotonic ms). Tests may point it elsewhere to
 * move time forward; it defaults to ml_now_ms. */
extern int64_t (*mitm_clock_ms)(void);

/* One --allow-host entry, parsed: the glob is lower-cased and has no trailing dot. */
struct allow_entry {
	char *glob;
	uint16_t port;   /* 0 = any port */
	bool is_ip;      /* the glob is an IPv4 literal: an "explicit allow" of ip */
	uint32_t ip;     /* host order */
};

struct name_entry {
	char *name;         /* NULL = free */
	uint32_t addr;      /* host order */
	int32_t next;       /* hash chain (entry index, -1 = end) */
	int64_t expires_ms;
};

/* Learned names hashed by address. Entries [0, fixed_cap) are --add-host (never evicted); the
 * NAMES_MAX after them are a ring: a new pair takes the slot after the previous one, evicting
 * what is there. */
struct names {
	struct name_entry *e;
	int32_t *bucket;
	uint32_t cap, fixed_cap, n_fixed, ring;
};

struct dirbuf {
	uint8_t *data;      /* MITM_BUF_CAP bytes, or NULL while empty */
	uint32_t off, len;
	bool eof;           /* the source sent FIN */
	bool shut;          /* FIN passed on (shutdown(SHUT_WR) on the sink) */
};

enum flow_state { FLOW_CONNECTING, FLOW_OPEN };

struct mitm_flow {
	int gfd, ufd;                     /* guest end, upstream socket */
	enum flow_state state;
	int32_t gidx, uidx;               /* their slots in the last pollfd array, -1 = none */
	uint32_t index;                   /* position in mitm.flows */
	struct sockaddr_in gsrc, odst;    /* for abort_flow */
	struct dirbuf up, down;           /* guest -> upstream, upstream -> guest */
	int64_t last_ms;                  /* last byte either way (or the connect start) */
};

struct mitm {
	struct mitm_config cfg;           /* allow_hosts/add_hosts not kept: parsed below */
	uint32_t gateway, dns_alias;      /* host order */
	uint32_t *host_addrs;             /* this host's IPv4 addresses, host order */
	size_t n_host_addrs;
	struct allow_entry *allow;
	size_t n_allow;
	bool allow_has_names;             /* some entry is not an IPv4 literal */
	struct names names;

	struct mitm_flow **flows;         /* NULL holes only inside mitm_poll_done */
	size_t n_flows, cap_flows;
	struct pollfd *pfds;
	size_t cap_pfds;
	uint8_t *scratch;                 /* MITM_BUF_CAP: a read that is sent on at once */
	int64_t now_ms;                   /* the clock, read once per mitm_poll_done */
	struct mitm_stats st;
};

/* policy.c */
int allow_parse(struct mitm *m, char **hosts, size_t n, struct ml_err *e);
void allow_free(struct mitm *m);
/* True if name matches a name entry of the allow-list (worth learning). */
bool allow_wants_name(const struct mitm *m, const char *name);
/* Where an allowed flow to orig really connects (gateway -> 127.0.0.1, DNS alias -> dns[0]). */
void policy_upstream(const struct mitm *m, const struct sockaddr_in *orig, struct sockaddr_in *up);
/* Lower-cases src into dst (cap bytes) without a trailing dot; false if empty or too long. */
bool host_normalize(const char *src, char *dst, size_t cap);

/* names.c */
/* n_fixed: room for that many permanent pairs (added with expires_ms = NAMES_FOREVER). */
int names_init(struct names *t, uint32_t n_fixed);
void names_free(struct names *t);
/* name must be normalized. Returns 0 or -ENOMEM. */
int names_add(struct names *t, const char *name, uint32_t addr, int64_t expires_ms);
/* Walks the live names of addr: start with *cur = NAMES_ITER_START; returns NULL at the end. */
#define NAMES_ITER_START (-2)
const char *names_next(const struct names *t, uint32_t addr, int64_t now_ms, int32_t *cur);

/* relay.c */
void relay_free_all(struct mitm *m);

#endif
