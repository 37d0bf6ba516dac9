/* mitm/mitm.h - what happens to each guest TCP flow once slirpnet has turned it into a file
 * descriptor: the egress policy (allow-list globs, private ranges, always-blocked addresses)
 * and the upstream side: by default a plain relay (connect upstream, splice both
 * ways), or with interception the HTTP and TLS proxies (see the block at the end).
 *
 * Single-threaded like slirpnet: every call from the one thread running the network loop.
 *
 * Driving it (next to slirpnet, in the same poll):
 *   slirpnet's connect_check -> mitm_connect_check(); its flow callback -> mitm_flow();
 *   slirpnet's dns_answer callback -> mitm_dns_learn();
 *   mitm_poll_fill(m, &fds, &n, &timeout); poll(...); mitm_poll_done(m, fds, n);
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

#define MITM_MAX_DNS 4

struct mitm_add_host {
	const char *host;
	struct in_addr ip;
};

struct mitm_intercept;

struct mitm_config {
	/* --allow-host globs (upstream's allow-list syntax), each optionally followed by ":PORT" (our
	 * extension: only that port). NULL or empty = every destination that passes the rest of
	 * the policy. An exact IPv4 literal entry is an "explicit allow" of that address: it
	 * lifts the private-range block and makes the gateway (10.0.2.2 -> the host's loopback)
	 * reachable; it never lifts the always-blocked set. */
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

	/* The guest's connection must end with RST, not FIN: the upstream connect was refused,
	 * unreachable or timed out, the upstream reset, or the flow table is full. Called just
	 * before mitm closes the guest fd (slirpnet_flow_abort() forges the RSTs). NULL: the fd
	 * is only closed. Must not call back into this mitm. */
	void (*abort_flow)(void *arg, const struct sockaddr_in *guest_src,
			   const struct sockaddr_in *orig_dst);
	void *arg;
};

struct mitm_stats {
	uint64_t flows_total, flows_active;
	uint64_t denied_private, denied_blocked, denied_allowlist, denied_gateway;
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
};

struct mitm;

int mitm_new(const struct mitm_config *cfg, struct mitm **out, struct ml_err *e);
/* Closes every flow (both ends). NULL-safe. */
void mitm_free(struct mitm *m);

/* The policy for a new guest connection to dst (AF_INET). 0 = allow, -EACCES = deny. Cheap
 * and synchronous (no DNS lookups): names are known only through mitm_dns_learn(). In order:
 * always blocked (0/8, 127/8, 169.254/16, 224/4, 240/4, this host's addresses, the DNS alias
 * except port 53); the gateway (only with its literal in the list); TCP/53 to the alias or a
 * configured server; private ranges (if block_private_ips, unless a literal entry); the
 * allow-list (globs match the dotted address or an unexpired learned name). Each denial is
 * counted in stats.denied_*. */
int mitm_connect_check(struct mitm *m, const struct sockaddr *dst);
/* An allowed flow: fd (nonblocking AF_UNIX stream, the guest's end) is now owned by m. */
void mitm_flow(struct mitm *m, int fd, const struct sockaddr_in *guest_src,
	       const struct sockaddr_in *orig_dst);
/* The guest's resolver was told that name has these addresses (slirpnet relays DNS answers):
 * an allow-list match on name makes the addresses allowed for ttl_s seconds (at least 60,
 * at most 86400), so a connection that follows a lookup is checked against the name. */
void mitm_dns_learn(struct mitm *m, const char *name, const struct in_addr *addrs, size_t n,
		    uint32_t ttl_s);

/* Same contract as slirpnet_poll_fill/poll_done: *fds is owned by m until the next call; the
 * slice may be copied into a bigger array as long as its order is kept. poll_done with n = 0
 * (poll failed) runs only the timers (connect timeout, idle and half-close reaping). */
void mitm_poll_fill(struct mitm *m, struct pollfd **fds, size_t *n, int *timeout_ms);
void mitm_poll_done(struct mitm *m, const struct pollfd *fds, size_t n);

void mitm_stats(const struct mitm *m, struct mitm_stats *st);

/* Host glob match, upstream's allow-list rules (exposed for the unit tests and the TLS/HTTP
 * proxy): "*", "*.x.y" (suffix, not the apex), "name.*" (prefix), other "*" wildcards, exact.
 * Unlike upstream, case-insensitive (DNS names are), and a trailing dot is ignored. */
bool mitm_host_glob_match(const char *pattern, const char *host);
/* 1 if addr (network order) is in a --block-private-ips range. */
bool mitm_ip_is_private(struct in_addr addr);

/* ---- Interception (reference/rpc.md §7.5, §8) ----
 * On when the caller says so: per the reference, when the allow-list is not empty, there are
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

/* One proxied exchange or one refusal (reference/rpc.md §5.15), on the network thread: copy
 * what you keep. Strings are never NULL. No secret value is ever in one. */
struct mitm_event {
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
	const char *callback_socket;        /* the SDK's hook socket (§8.2); NULL = none */
	const char *audit_path;             /* egress.jsonl (one JSON line per decision); NULL = none */
	/* Each event (best effort: the callee queues it, bounded). NULL = none. */
	void (*event)(void *arg, const struct mitm_event *ev);
	void *event_arg;
	unsigned head_timeout_ms;      /* default 30000: a request head (or TLS handshake) must finish */
	unsigned keepalive_ms;         /* default 300000: an idle connection between requests */
	unsigned response_timeout_ms;  /* default 300000: the upstream's response head (then 504) */
};

/* The per-user CA: dir/ca.pem (certificate + ECDSA P-256 key, 0600), created once (atomic:
 * a temp file renamed in; a concurrent creator's file wins). *pem: certificate and key, for
 * mitm_intercept.ca_pem; *cert_pem: the certificate alone, for the guest. Both malloc'd. */
int mitm_ca_load(const char *dir, char **pem, char **cert_pem, struct ml_err *e);
/* Hook rules from their wire form: the array of network.interception.rules (reference/rpc.md
 * §7.1, compiled as §8.1 says; rules that neither block, mutate nor call back are dropped).
 * NULL or an empty array: no rules. -EINVAL (e says which rule) for a rule whose header value
 * or rewrite path holds a line break or NUL. */
struct json_t;
int mitm_rules_parse(const struct json_t *rules, struct mitm_rules **out, struct ml_err *e);
void mitm_rules_free(struct mitm_rules *r);
size_t mitm_rules_count(const struct mitm_rules *r);
/* A fresh placeholder: SANDBOX_SECRET_ + 32 lower-case hex digits (16 random bytes). */
int mitm_placeholder_new(char out[MITM_PLACEHOLDER_LEN + 1]);

#endif
