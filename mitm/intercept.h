/* mitm/intercept.h - internal to mitm/: the intercepting proxies (HTTP on TCP/80, TLS on
 * TCP/443) and what they share: policy by name (decide.c), the job threads (worker.c),
 * secrets (secrets.c), the audit trail and events (audit.c). See README "Interception". */
#ifndef ML_MITM_INTERCEPT_H
#define ML_MITM_INTERCEPT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mitm/http.h"
#include "mitm/internal.h"

#define ICPT_MAX_ADDRS 8
#define AUDIT_MAX_BYTES (16u << 20)   /* egress.jsonl beyond this -> egress.jsonl.1 */

/* ---- jobs (worker.c): blocking work off the network thread ---- */
enum job_kind { JOB_RESOLVE, JOB_CALLBACK };

struct job {
	enum job_kind kind;
	uint64_t flow_id;
	bool orphaned;            /* the flow ended: free it when done (under the worker's lock) */
	struct job *next;
	/* JOB_RESOLVE */
	char name[NAME_MAX_LEN + 1];
	struct in_addr addrs[ICPT_MAX_ADDRS];
	int n_addrs;
	int err;                  /* 0, or a negative errno (-ENOENT: no such name) */
	/* JOB_CALLBACK: one JSON line out, one back */
	char *sock_path, *request, *response;
	unsigned timeout_ms;      /* 0: none */
	const void *ctx;          /* the caller's (which rule) */
	bool after;               /* which phase */
};

struct worker;
int worker_new(struct worker **out);
/* Threads still busy finish on their own and free what they hold; never blocks. */
void worker_free(struct worker *w);
/* Queues j (owned by the worker until it comes back from worker_take). -EBUSY: queue full. */
int worker_submit(struct worker *w, struct job *j);
/* The fd that becomes readable when jobs are done. */
int worker_fd(const struct worker *w);
/* The finished jobs (a list through ->next), orphans already freed. */
struct job *worker_take(struct worker *w);
/* The flow no longer wants j: it is freed when it finishes (or now, if it has). */
void worker_cancel(struct worker *w, struct job *j);
void job_free(struct job *j);
/* Tests: replaces getaddrinfo (runs on a worker thread). Returns n or a negative errno. */
extern int (*mitm_resolve_hook)(const char *name, struct in_addr *out, int max);

/* ---- secrets (secrets.c) ---- */
struct secret {
	char *name, *value, *ph;
	size_t vlen, phlen;
	char **hosts;
	size_t n_hosts;
};

struct secrets {
	struct secret *v;
	size_t n;
};

int secrets_init(struct secrets *s, const struct mitm_secret *in, size_t n, struct ml_err *e);
void secrets_free(struct secrets *s);
bool secret_for_host(const struct secret *s, const char *host);
/* For a request to host (normalized, no port): every placeholder of a secret for this host
 * in a header value (also inside Authorization/Proxy-Authorization Basic credentials) or in
 * the query part of *target is replaced by its value; used gets bit i for secret i (i < 64).
 * Returns 0, -EACCES if a placeholder of a secret NOT for this host is in a header value or
 * anywhere in the target (nothing changed then; *bad = its name), or -ENOMEM. */
int secrets_apply(const struct secrets *s, const char *host, struct hdrs *hd, char **target,
		  uint64_t *used, const char **bad);

/* ---- the intercept state of a mitm ---- */
struct add_host {
	char *name;            /* normalized */
	uint32_t ip;           /* host order */
};

struct tls_ctx;            /* tls.c */

/* An idle upstream connection kept for the next guest connection (pool.c). */
#define POOL_MAX 32
#define POOL_IDLE_MS 4000
struct pooled {
	int fd;
	gnutls_session_t tls;         /* NULL: plain */
	bool https;
	bool offered_h2;              /* h2 was offered and the upstream chose HTTP/1.1 anyway */
	uint16_t port;
	struct sockaddr_in dial;
	uint32_t sockbuf;             /* its charge to the upstream-buffer budget (sockbuf.c) */
	char host[NAME_MAX_LEN + 1];  /* the policy host it was opened for */
	char sni[NAME_MAX_LEN + 1];   /* the name it sent and verified */
	int64_t since_ms;
	int32_t idx;                  /* its slot in the last pollfd array */
};

struct intercept {
	struct mitm_intercept cfg;    /* strings not kept: copied below */
	struct secrets secrets;
	struct worker *worker;
	struct tls_ctx *tls;          /* NULL until TLS is set up (tls.c) */
	struct pooled pool[POOL_MAX];
	unsigned n_pool;
	struct add_host *add_hosts;   /* --add-host: resolved before DNS */
	size_t n_add_hosts;
	const struct mitm_rules *rules;
	char *callback_socket;
	/* audit (audit.c) */
	char *audit_path;
	int audit_fd;
	uint64_t audit_size;
	struct iob audit_buf;
};

int intercept_init(struct mitm *m, const struct mitm_config *cfg, struct ml_err *e);
void intercept_free(struct mitm *m);
bool intercept_port(const struct mitm *m, uint16_t port);
/* The handler for a new flow, or NULL (relay). */
const struct flow_ops *intercept_handler(struct mitm *m, const struct sockaddr_in *dst);
int intercept_poll_fd(const struct mitm *m);
void intercept_jobs_done(struct mitm *m);
/* End of a poll round: buffered audit lines go out. */
void intercept_round_end(struct mitm *m);

/* ---- policy by name (decide.c) ---- */
enum verdict { V_ALLOW, V_RESOLVE, V_DENY };

struct target {
	char host[NAME_MAX_LEN + 1];  /* the policy host: a normalized name or a dotted IPv4 */
	uint16_t port;                /* the guest's destination port */
	bool gateway;                 /* the guest dialed the gateway: the upstream is the host's loopback */
	struct sockaddr_in dial;      /* where the upstream connects (once allowed) */
	const char *reason;           /* why denied */
};

/* Splits "host[:port]" (brackets for IPv6 literals), normalizes the host. False if empty,
 * too long, or not a plausible host. */
bool host_from_authority(const char *auth, char *out, size_t cap);
/* The policy for a request or TLS session to name (NULL/"" = the flow's destination address)
 * on flow f: the allow-list by name, then for an address (literal, gateway) the address
 * checks. V_RESOLVE: the name must be resolved host-side (a JOB_RESOLVE), then target_pick. */
enum verdict target_decide(struct mitm *m, const struct mitm_flow *f, const char *name, struct target *t);
/* The first resolved address that passes the address checks becomes t->dial. */
enum verdict target_pick(struct mitm *m, struct target *t, const struct in_addr *addrs, int n);
/* An --add-host entry for name: fills *ip and returns true. */
bool target_add_host(const struct mitm *m, const char *name, uint32_t *ip);

/* policy.c (address checks shared with the SYN-time policy) */
bool policy_addr_blocked(const struct mitm *m, uint32_t ip);
bool policy_addr_explicit(const struct mitm *m, uint32_t ip, uint16_t port);
bool policy_name_allowed(const struct mitm *m, const char *host, uint16_t port);

/* ---- audit trail and events (audit.c) ---- */
void audit_event(struct mitm *m, const struct mitm_http_event *ev);
void audit_flush(struct mitm *m);

/* ---- the idle upstream pool (pool.c) ---- */
struct hx;
/* A flow that ends with an idle, reusable upstream parks it (else nothing happens). */
void pool_park(struct mitm *m, struct hx *hx);
/* An idle upstream for hx's target, now hx's (UP_READY): true; else false. */
bool pool_take(struct mitm *m, struct hx *hx);
void pool_poll_fill(struct mitm *m, struct pollfd *pfds, size_t *k, size_t cap, int64_t *next);
void pool_poll_done(struct mitm *m, const struct pollfd *fds, size_t n);
void pool_free_all(struct mitm *m);

/* ---- the HTTP/1 proxy handler (proxy.c) ---- */
extern const struct flow_ops http_ops;   /* TCP/80 */
extern const struct flow_ops https_ops;  /* TCP/443 */

#endif
