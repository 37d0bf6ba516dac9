/* mitm/mitm.h - what happens to each guest TCP flow once slirpnet has turned it into a file
 * descriptor: the egress policy (allow-list globs, private ranges, always-blocked addresses,
 * which DNS questions may leave) and the upstream side: by default a plain relay (connect
 * upstream, splice both ways), TCP DNS to the configured servers served message by message
 * under the same DNS rules as UDP, or with interception the HTTP and TLS proxies (see the
 * block at the end).
 *
 * Single-threaded like slirpnet: every call from the one thread running the network loop.
 *
 * Driving it (next to slirpnet, in the same poll):
 *   slirpnet's connect_check -> mitm_connect_check(); its flow callback -> mitm_flow();
 *   slirpnet's dns_check -> mitm_dns_allowed(); its dns_answer -> mitm_dns_learn();
 *   mitm_poll_fill(m, &fds, &n, &timeout); mitm_dns_poll_fill(m, &dfds, &dn, &timeout);
 *   poll(...); mitm_poll_done(m, fds, n); mitm_dns_poll_done(m, dfds, dn);
 *   mitm_host_watch_fd(m) readable -> mitm_host_watch_changed(m).
 */
#ifndef ML_MITM_H
#define ML_MITM_H

#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/err.h"
#include "dnswire/dnswire.h"

#define MITM_MAX_DNS 4

struct mitm_add_host {
	const char *host;
	struct in_addr ip;
};

struct mitm_intercept;
/* Why a connection or a DNS question was refused or let through (cfg.event). */
struct mitm_event {
	bool dns;                 /* a DNS question (refused ones only), not a TCP connection */
	bool blocked;
	struct sockaddr_in dst;   /* connection: the guest's destination; DNS: the server */
	const char *host;         /* DNS: the question; connection: the learned name an entry
				   * matched, if that is how it was allowed; else NULL */
	uint16_t qtype;           /* DNS */
	const char *reason;       /* static text (README "Events") */
};

struct mitm_config {
	/* --allow-host entries "glob[:PORT]" (README "Allow-list entries"; each must pass
	 * mitm_allow_host_check; blanks and repeats are dropped). NULL or empty = every
	 * destination that passes the rest of the policy, and DNS unfiltered. An exact IPv4
	 * literal entry is an "explicit allow" of that address: it lifts the private-range block
	 * and makes the gateway (10.0.2.2 -> the host's loopback) reachable; it never lifts the
	 * always-blocked set. A name entry without :PORT opens ports 80 and 443 only. */
	char **allow_hosts;
	size_t n_allow_hosts;
	/* Refuse 10/8, 172.16/12, 192.168/16, 127/8, 169.254/16 destinations, whatever name the
	 * guest used to find them (checked on the address connected to: no DNS rebinding). */
	bool block_private_ips;
	struct in_addr gateway;      /* slirp's gateway (host side); 0 = 10.0.2.2 */
	struct in_addr dns_alias;    /* 0 = 10.0.2.3: TCP DNS to it goes to dns[0] */
	struct sockaddr_in dns[MITM_MAX_DNS]; /* the configured servers; TCP/53 to them is allowed */
	size_t n_dns;
	const struct mitm_add_host *add_hosts;  /* --add-host: learned like DNS answers */
	size_t n_add_hosts;
	unsigned connect_timeout_ms; /* default 10000: upstream connect; then the guest flow ends */
	unsigned idle_timeout_ms;    /* default 3600000: no byte either way -> both ends closed */
	unsigned half_close_ms;      /* default 300000: one direction finished, other silent */
	unsigned max_flows;          /* default 1024; beyond: the new guest fd is aborted at once */
	/* Interception (below): NULL = every flow is relayed, checked by address only. */
	const struct mitm_intercept *intercept;
	/* Kernel buffers of all upstream sockets together (default 64 MiB; README "Upstream
	 * socket buffers"): the first sockets autotune while the budget holds their maximum,
	 * later ones get fixed SO_SNDBUF/SO_RCVBUF from what is left (16 KiB to 1 MiB each). */
	size_t upstream_buf_budget;

	/* The guest's connection must end with RST, not FIN: the upstream connect was refused,
	 * unreachable or timed out, the upstream reset, or the flow table is full. Called just
	 * before mitm closes the guest fd (slirpnet_flow_abort() forges the RSTs). NULL: the fd
	 * is only closed. Must not call back into this mitm. */
	void (*abort_flow)(void *arg, const struct sockaddr_in *guest_src,
			   const struct sockaddr_in *orig_dst);
	/* Every policy verdict on a connection, and every refused DNS question. Called on the
	 * network thread, synchronously: copy what you keep, and be quick. NULL = none. */
	void (*event)(void *arg, const struct mitm_event *ev);
	void *arg;
};

struct mitm_stats {
	uint64_t flows_total, flows_active;
	uint64_t denied_private, denied_blocked, denied_allowlist, denied_gateway;
	uint64_t dns_refused;                /* questions refused (UDP and TCP) */
	uint64_t dns_tcp_flows, dns_tcp_queries;  /* TCP DNS: flows served, queries forwarded */
	uint64_t host_addr_reloads;          /* this host's addresses read again after a change */
	uint64_t connect_failed, connect_timeout, reaped_idle, dropped_full;
	uint64_t bytes_up, bytes_down;      /* guest -> upstream, upstream -> guest */
	size_t bytes_per_flow_idle;          /* a flow's memory with nothing buffered */
	size_t bytes_per_flow_max;           /* a flow's memory with both buffers full */
	uint64_t buffers_in_use;             /* direction buffers allocated now (64 KiB each) */
	uint64_t requests_proxied, requests_blocked;  /* intercepted HTTP exchanges */
	uint64_t tls_handshakes, tls_guest_failed, tls_upstream_failed;
	uint64_t tls_guest_resumed, tls_upstream_handshakes, tls_upstream_resumed;
	uint64_t upstream_parked, upstream_reused, upstream_retried;  /* the idle upstream pool */
	uint64_t h2_connections;             /* intercepted flows bridged as HTTP/2 both ways */
	size_t sockbuf_in_use;               /* upstream socket buffers charged to the budget now */
	uint64_t sockbuf_fixed;              /* upstream sockets given fixed buffers (budget short) */
};

struct mitm;

int mitm_new(const struct mitm_config *cfg, struct mitm **out, struct ml_err *e);
/* Closes every flow (both ends). NULL-safe. */
void mitm_free(struct mitm *m);

/* The policy for a new guest connection to dst (AF_INET). 0 = allow, -EACCES = deny. Cheap
 * and synchronous (no DNS lookups): names are known only through mitm_dns_learn(). In order:
 * always blocked (0/8, 127/8, 169.254/16, 100.64/10, 168.63.129.16, 192.0.0/24, 198.18/15,
 * 224/4, 240/4, this host's addresses, the DNS alias except port 53); the gateway (only with
 * its literal in the list); TCP/53 to the alias or a configured server; private ranges (if
 * block_private_ips, unless a literal entry); the allow-list (address entries match the
 * dotted address, name entries an unexpired learned name, on their port: 80/443 without
 * one). Each denial is counted in stats.denied_* and reported through cfg.event. */
int mitm_connect_check(struct mitm *m, const struct sockaddr *dst);
/* An allowed flow: fd (nonblocking AF_UNIX stream, the guest's end) is now owned by m. */
void mitm_flow(struct mitm *m, int fd, const struct sockaddr_in *guest_src,
	       const struct sockaddr_in *orig_dst);

/* May this DNS question go to server (a configured server)? With an empty allow-list, yes.
 * Otherwise only class IN, types A, AAAA, CNAME, SVCB and HTTPS, for a host name that a
 * name-capable entry matches (whatever its port) or that the answer to such a name CNAMEd to
 * (for that answer's TTL). A refusal is counted (stats.dns_refused) and reported. */
bool mitm_dns_allowed(struct mitm *m, const struct dnswire_query *q, const struct sockaddr_in *server);
/* The guest's resolver was told what a says (slirpnet relays UDP answers, TCP ones pass
 * here too): if an entry matches the name (or the name is a CNAME target of one that does),
 * its addresses are allowed, under that allowed name, for a's TTL (at least 60 s, at most
 * 86400 s), so a connection that follows a lookup is checked against the name; its CNAME
 * targets become askable. */
void mitm_dns_learn(struct mitm *m, const struct dnswire_answer *a);

/* ---- the running list (callable any time on the network thread) ---- */
enum mitm_allow_op { MITM_ALLOW_SET, MITM_ALLOW_ADD, MITM_ALLOW_DELETE };
/* Changes the allow-list: SET replaces it, ADD appends the entries not in it yet, DELETE
 * removes those in it (entries compare by their trimmed text; blanks are ignored). Every
 * entry is checked first (mitm_allow_host_check): on an error nothing changes. New
 * connections and DNS questions see the new list at once; open flows are left alone.
 * *changed (if not NULL) gets a malloc'd NULL-terminated list of the entries really added or
 * removed (SET: the new list). Returns 0 or -errno with e set. */
int mitm_allow_update(struct mitm *m, enum mitm_allow_op op, char *const *hosts, size_t n,
		      char ***changed, struct ml_err *e);
/* The current list, as entered: a malloc'd NULL-terminated copy. 0 or -ENOMEM. */
int mitm_allow_list(const struct mitm *m, char ***out);

/* Checks one allow-list entry "glob[:PORT]" (README "Allow-list entries"): a host name, an
 * IPv4 literal, an address glob ("93.184.*"), "*", or a name glob whose fixed part the guest
 * cannot choose. Refused with a one-line message (-EINVAL): bad characters or port, empty
 * labels, a '*' in the last label ("github.*" matches github.attacker.tld), a bare "*" label
 * anywhere but first, or fewer than two whole labels after the last '*' ("*github.com"
 * matches evilgithub.com, "*.com" every .com name). */
int mitm_allow_host_check(const char *entry, struct ml_err *e);

/* ---- this host's own addresses ---- */
/* A netlink socket that becomes readable when this host's IPv4 addresses change, or -1 (then
 * only those read at mitm_new are blocked; logged). */
int mitm_host_watch_fd(const struct mitm *m);
/* Call when that fd is readable: drains it and reads the addresses again. */
void mitm_host_watch_changed(struct mitm *m);

/* Same contract as slirpnet_poll_fill/poll_done: *fds is owned by m until the next call; the
 * slice may be copied into a bigger array as long as its order is kept. poll_done with n = 0
 * (poll failed) runs only the timers (connect timeout, idle and half-close reaping). */
void mitm_poll_fill(struct mitm *m, struct pollfd **fds, size_t *n, int *timeout_ms);
void mitm_poll_done(struct mitm *m, const struct pollfd *fds, size_t n);
/* The same for the TCP DNS flows (a separate slice: the array is m's until the next call). */
void mitm_dns_poll_fill(struct mitm *m, struct pollfd **fds, size_t *n, int *timeout_ms);
void mitm_dns_poll_done(struct mitm *m, const struct pollfd *fds, size_t n);

void mitm_stats(const struct mitm *m, struct mitm_stats *st);

/* Host glob match (exposed for the unit tests and the proxy's Host/SNI checks): "*", "*.x.y"
 * (suffix, not the apex), "name.*" (prefix), other "*" wildcards matching any run of
 * characters dots included, exact. Case-insensitive (DNS names are), a trailing dot ignored.
 * Entries are validated first (mitm_allow_host_check), so "name.*" never reaches it from a
 * list. */
bool mitm_host_glob_match(const char *pattern, const char *host);
/* 1 if addr (network order) is in a --block-private-ips range. */
bool mitm_ip_is_private(struct in_addr addr);

/* ---- Interception (the JSON-RPC protocol's network interception, secrets and hook rules) ----
 * On when the caller says so: per the protocol, when the allow-list is not empty, there are
 * secrets or hook rules, or interception is forced (--network-intercept). Then TCP/80 flows
 * go through an HTTP proxy and TCP/443 flows through a TLS-terminating one: the policy is
 * checked on the name the guest asked for (Host / SNI) and on the address the host dials after
 * resolving it itself; secrets are substituted and hook rules run. Other ports stay relayed. */
#define MITM_PLACEHOLDER_PREFIX "SANDBOX_SECRET_"
#define MITM_PLACEHOLDER_LEN 47                          /* the prefix + 32 hex digits */
#define MITM_CA_GUEST_PATH "/etc/ssl/certs/matchlock-ca.crt"

struct mitm_secret {
	const char *name;         /* the guest's environment variable */
	const char *value;        /* the real value: never logged, never sent to the guest */
	const char *placeholder;  /* what the guest's environment holds (mitm_placeholder_new) */
	char **hosts;             /* globs; none = any host */
	size_t n_hosts;
};

/* One proxied exchange or one refusal (an rpc `event` of type network), on the network thread: copy
 * what you keep. Strings are never NULL. No secret value is ever in one. */
struct mitm_http_event {
	int64_t time_ms;             /* unix ms */
	const char *method, *url, *host, *path;
	int status;
	uint64_t request_bytes, response_bytes;
	uint32_t duration_ms;
	bool blocked;
	const char *reason;          /* why it was blocked, else "" */
	const char *rule;            /* the hook rule that blocked or changed it, else "" */
	const char *const *secrets;  /* names of the secrets substituted */
	size_t n_secrets;
};

struct mitm_rules;

struct mitm_intercept {
	const char *ca_pem;                 /* the CA's certificate and key (mitm_ca_load); NULL:
					     * TCP/443 is not intercepted */
	const char *extra_ca_file;          /* $SSL_CERT_FILE: upstreams may also chain to these */
	const struct mitm_secret *secrets;  /* their hosts join the allow-list */
	size_t n_secrets;
	const struct mitm_rules *rules;     /* hook rules (mitm_rules_parse); NULL = none */
	const char *callback_socket;        /* the SDK's hook socket; NULL = none */
	const char *audit_path;             /* egress.jsonl (one JSON line per decision); NULL = none */
	/* Each event (best effort: the callee queues it, bounded). NULL = none. */
	void (*event)(void *arg, const struct mitm_http_event *ev);
	void *event_arg;
	unsigned head_timeout_ms;      /* default 30000: a request head (or TLS handshake) must finish */
	unsigned keepalive_ms;         /* default 300000: an idle connection between requests */
	unsigned response_timeout_ms;  /* default 300000: the upstream's response head (then 504) */
};

/* The per-user CA: dir/ca.pem (certificate + ECDSA P-256 key, 0600), created once (atomic:
 * a temp file renamed in; a concurrent creator's file wins). *pem: certificate and key, for
 * mitm_intercept.ca_pem; *cert_pem: the certificate alone, for the guest. Both malloc'd. */
int mitm_ca_load(const char *dir, char **pem, char **cert_pem, struct ml_err *e);
/* Hook rules from their wire form: the array of network.interception.rules
 * (compiled as the SDKs expect; rules that neither block, mutate nor call back are dropped).
 * NULL or an empty array: no rules. -EINVAL (e says which rule) for a rule whose header value
 * or rewrite path holds a line break or NUL. */
struct json_t;
int mitm_rules_parse(const struct json_t *rules, struct mitm_rules **out, struct ml_err *e);
void mitm_rules_free(struct mitm_rules *r);
size_t mitm_rules_count(const struct mitm_rules *r);
/* A fresh placeholder: SANDBOX_SECRET_ + 32 lower-case hex digits (16 random bytes). */
int mitm_placeholder_new(char out[MITM_PLACEHOLDER_LEN + 1]);
/* network.secrets from the wire : {"NAME": {"value": str,
 * "placeholder": str (optional), "hosts": [str]}}; null or {} = none. Each gets a fresh
 * placeholder unless one is given. *out: a calloc'd array of *n, every string a copy: free it
 * with mitm_secrets_free (which wipes the values). -EINVAL with e ("invalid configuration:
 * network.secrets.NAME: ...", never the value) for a malformed entry. Values with a line break
 * or NUL are refused later, by mitm_new. */
int mitm_secrets_parse(const struct json_t *obj, struct mitm_secret **out, size_t *n, struct ml_err *e);
void mitm_secrets_free(struct mitm_secret *s, size_t n);

#endif
