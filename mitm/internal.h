/* mitm/internal.h - state shared by the files of mitm/ (not part of the API; the unit tests
 * include it for the clock hook and the limits). */
#ifndef ML_MITM_INTERNAL_H
#define ML_MITM_INTERNAL_H

#include <netinet/in.h>
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
#define ALIASES_MAX 256             /* CNAME targets of allowed names, ring */
#define DNSFLOWS_MAX 64             /* concurrent TCP DNS flows */
#define SOCKBUF_MIN (16u * 1024u)   /* fixed upstream SO_SNDBUF / SO_RCVBUF, each: floor */
#define SOCKBUF_MAX (1024u * 1024u) /* ... and ceiling */
#define SOCKBUF_BUDGET_DEFAULT ((size_t)64 << 20)

/* The clock behind TTLs and flow timeouts (monotonic ms). Tests may point it elsewhere to
 * move time forward; it defaults to ml_now_ms. */
extern int64_t (*mitm_clock_ms)(void);
/* Tests and tests/tools/mlproxy only: rewrites the address every upstream connect dials (so a
 * "public" address can lead to a server on loopback). NULL in the product. */
extern void (*mitm_dial_hook)(struct sockaddr_in *up);

/* What an entry can match: the dotted address a flow goes to, or names (DNS questions and
 * the names learned from their answers). See README "Allow-list entries". */
enum entry_kind {
	ENTRY_IP,        /* an IPv4 literal: an "explicit allow" of ip; addresses only */
	ENTRY_ADDR_GLOB, /* every label a decimal octet or '*' ("93.184.*"): addresses only */
	ENTRY_ANY,       /* "*": every address and every name */
	ENTRY_NAME,      /* a host name or a name glob: names only */
	ENTRY_NEVER,     /* an IPv6 literal: the guest has no IPv6 */
};

/* One --allow-host entry, parsed: the glob is lower-cased and has no trailing dot. */
struct allow_entry {
	char *text;      /* as given (trimmed): what the list reports and delete compares */
	char *glob;
	uint16_t port;   /* 0 = any port (names: 80 and 443) */
	enum entry_kind kind;
	uint32_t ip;     /* ENTRY_IP, host order */
};

/* A name an allowed name's answer CNAMEd to: the guest may ask for it too, and addresses
 * learned for it count as origin's. */
struct alias {
	char *name, *origin;   /* NULL = free */
	int64_t expires_ms;
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

struct mitm_flow;
struct job;
struct intercept;

/* A flow handler: what happens to a guest TCP flow. mitm_flow() picks one per flow (the plain
 * relay, or an intercepting proxy); the table, the poll array, timers and the ends of a flow
 * are generic (flow.c). A handler may start without an upstream (f->ufd = -1): read the
 * guest's first bytes, decide, then connect (flow_connect) - the "sniff, decide, connect,
 * transform" shape of the proxies. Every callback runs on the network thread. */
struct flow_ops {
	const char *name;
	/* The flow was just added to the table (f->gfd set, f->ufd = -1). Returns false if it
	 * already ended (the handler called flow_end/flow_abort). */
	bool (*start)(struct mitm *m, struct mitm_flow *f);
	/* poll events wanted now on the guest fd and on the upstream fd (0: not polled) */
	short (*guest_events)(const struct mitm_flow *f);
	short (*upstream_events)(const struct mitm_flow *f);
	/* Something happened on the flow's fds (either revents may be 0; a handler may also be
	 * stepped with both 0 when a job it waited for is done). Returns false if the flow ended. */
	bool (*step)(struct mitm *m, struct mitm_flow *f, short grev, short urev);
	/* The flow's next deadline (INT64_MAX: none) and what happens then (false: it ended). */
	int64_t (*deadline)(const struct mitm *m, const struct mitm_flow *f);
	bool (*expire)(struct mitm *m, struct mitm_flow *f);
	/* Frees the handler's own state (f->h); called by flow_destroy, fds are closed after. */
	void (*release)(struct mitm *m, struct mitm_flow *f);
	/* A job the handler queued is done (intercept.h; the handler frees j). False: ended. */
	bool (*job_done)(struct mitm *m, struct mitm_flow *f, struct job *j);
};

struct mitm_flow {
	int gfd, ufd;                     /* guest end, upstream socket (-1: none yet) */
	uint32_t sockbuf;                 /* bytes charged to the upstream-buffer budget */
	const struct flow_ops *ops;
	void *h;                          /* the handler's state (NULL for the relay) */
	int state;                        /* the handler's state machine */
	int32_t gidx, uidx;               /* their slots in the last pollfd array, -1 = none */
	uint32_t index;                   /* position in mitm.flows */
	uint64_t id;                      /* unique per mitm (jobs find their flow by it) */
	struct sockaddr_in gsrc, odst;    /* for abort_flow */
	struct dirbuf up, down;           /* the relay's buffers: guest -> upstream, upstream -> guest */
	int64_t last_ms;                  /* last byte either way (or the connect start) */
};

struct dnsflow;

struct mitm {
	struct mitm_config cfg;           /* allow_hosts/add_hosts not kept: parsed below */
	uint32_t gateway, dns_alias;      /* host order */
	uint32_t *host_addrs;             /* this host's IPv4 addresses, host order */
	size_t n_host_addrs;
	int watch_fd;                     /* netlink: this host's addresses changed; -1 = none */
	struct allow_entry *allow;
	size_t n_allow;
	struct mitm_add_host *add_hosts;  /* copies (host strings owned), for a later names table */
	size_t n_add_hosts;
	struct names names;               /* allocated once some entry matches names */
	struct alias aliases[ALIASES_MAX];
	uint32_t alias_ring;
	size_t sockbuf_in_use;            /* upstream socket buffers charged now (sockbuf.c) */
	size_t sockbuf_autotuned;         /* the charge of one autotuned socket */

	struct dnsflow **dnsflows;        /* TCP DNS flows (dnsflow.c) */
	size_t n_dnsflows;
	struct pollfd *dns_pfds;
	size_t cap_dns_pfds;

	struct mitm_flow **flows;         /* NULL holes only inside mitm_poll_done */
	uint64_t next_flow_id;
	size_t n_flows, cap_flows;
	struct pollfd *pfds;
	size_t cap_pfds;
	uint8_t *scratch;                 /* MITM_BUF_CAP: a read that is sent on at once */
	struct intercept *icpt;           /* interception state (intercept.h), NULL when off */
	int32_t extra_idx;                /* the job fd's slot in the pollfd array, -1 = none */
	int64_t now_ms;                   /* the clock, read once per mitm_poll_done */
	struct mitm_stats st;
};

/* policy.c */
/* The policy's verdict, reported as an event (cfg.event) and counted by the caller. */
void policy_event(struct mitm *m, bool blocked, bool dns, const struct sockaddr_in *dst, const char *host,
		  uint16_t qtype, const char *reason);
/* True if name matches a name-capable entry of the allow-list (worth learning, may be asked). */
bool allow_wants_name(const struct mitm *m, const char *name);

/* allowlist.c */
/* Parses hosts (each checked by mitm_allow_host_check; blanks and repeats dropped) into a new
 * array. Returns 0 or -errno with e set; *out is NULL for an empty list. */
int allow_parse(char *const *hosts, size_t n, struct allow_entry **out, size_t *n_out, struct ml_err *e);
void allow_entries_free(struct allow_entry *a, size_t n);
/* The names table exists once any entry can match names (or --add-host pairs exist). */
int allow_ensure_names(struct mitm *m);
/* Where an allowed flow to orig really connects (gateway -> 127.0.0.1, DNS alias -> dns[0]). */
void policy_upstream(const struct mitm *m, const struct sockaddr_in *orig, struct sockaddr_in *up);
/* Lower-cases src into dst (cap bytes) without a trailing dot; false if empty or too long. */
bool host_normalize(const char *src, char *dst, size_t cap);

/* names.c */
/* The allowed name a CNAME target stands for, or NULL. */
const char *alias_origin(const struct mitm *m, const char *name, int64_t now_ms);
void alias_add(struct mitm *m, const char *name, const char *origin, int64_t expires_ms);
void aliases_free(struct mitm *m);
/* n_fixed: room for that many permanent pairs (added with expires_ms = NAMES_FOREVER). */
int names_init(struct names *t, uint32_t n_fixed);
void names_free(struct names *t);
/* name must be normalized. Returns 0 or -ENOMEM. */
int names_add(struct names *t, const char *name, uint32_t addr, int64_t expires_ms);
/* Walks the live names of addr: start with *cur = NAMES_ITER_START; returns NULL at the end. */
#define NAMES_ITER_START (-2)
const char *names_next(const struct names *t, uint32_t addr, int64_t now_ms, int32_t *cur);

/* flow.c: the table and the generic ends of a flow */
/* Which end failed: the guest's (it already reset, nothing to tell it) or the upstream's (the
 * guest must see a reset). */
enum side { SIDE_NONE, SIDE_GUEST, SIDE_UPSTREAM };
void flows_free_all(struct mitm *m);
/* Starts a nonblocking connect for f (TCP_NODELAY, socket buffers from the VM's budget):
 * 1 = connected, 0 = in progress, -errno. */
int flow_connect(struct mitm *m, struct mitm_flow *f, const struct sockaddr_in *up);
/* 0 once an in-progress connect succeeded, else the errno it failed with. */
int flow_so_error(int fd);
/* Ends the flow: SIDE_UPSTREAM -> the guest gets RST (abort_flow) and the upstream RST;
 * SIDE_GUEST -> the upstream gets RST; SIDE_NONE -> both closed (FIN). Frees f. */
void flow_end(struct mitm *m, struct mitm_flow *f, enum side failed);
/* Closes fd with RST instead of FIN (SO_LINGER 0), best effort. */
void flow_reset_on_close(int fd);
/* The flow with this id, or NULL if it has ended. */
struct mitm_flow *flow_by_id(struct mitm *m, uint64_t id);

/* relay.c: the plain relay (connect at once, splice both ways) */
extern const struct flow_ops relay_ops;

/* hostaddr.c: this host's own addresses (always blocked), re-read when they change */
int hostaddr_read(struct mitm *m, struct ml_err *e);
void hostaddr_watch_open(struct mitm *m);
void hostaddr_free(struct mitm *m);

/* sockbuf.c: a per-VM budget for upstream socket buffers */
/* Sets SO_SNDBUF and SO_RCVBUF on fd (before connect) from what the budget has left; returns
 * the bytes charged (to give back with sockbuf_release). */
void sockbuf_init(struct mitm *m);
uint32_t sockbuf_apply(struct mitm *m, int fd);
void sockbuf_release(struct mitm *m, uint32_t charged);

/* dnsflow.c: TCP DNS to the configured servers, filtered like UDP */
/* True if a flow to orig must be served by dnsflow (port 53 of the alias or a server). */
bool dnsflow_wants(const struct mitm *m, const struct sockaddr_in *orig);
void dnsflow_start(struct mitm *m, int fd, const struct sockaddr_in *gsrc, const struct sockaddr_in *odst);
void dnsflow_free_all(struct mitm *m);

#endif
