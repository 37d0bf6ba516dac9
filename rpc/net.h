/* rpc/net.h - a sandbox's guest network: the engine's frame stream -> slirpnet -> mitm, run on
 * a thread of its own so that bulk transfers and hundreds of flows never delay the control
 * channel (and the reverse). Internal to rpc/ (sandbox.c composes it; the RPC server and the
 * CLI's allow-list / port-forward commands use the control calls below).
 *
 * Threads: net_start/net_stop from the owner's thread. The control calls (net_allow_list,
 * net_forwards_set) and the event calls (net_events_fd, net_events_read) are thread-safe and
 * may be called from any thread while the network thread runs; a control call hands its work
 * to the network thread (which owns slirpnet and mitm) and waits for the answer, so calls are
 * served one at a time, in order. */
#ifndef ML_RPC_NET_H
#define ML_RPC_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/logfile.h"

struct net_publish {
	struct in_addr addr;   /* host address to listen on */
	int host_port, guest_port;  /* host_port 0: any free port (net_forwards_set reports it) */
};

struct net_opts {
	unsigned mtu;
	char **dns;            /* NULL-terminated IPv4 literals (already validated) */
	char **allow_hosts;    /* NULL-terminated entries (mitm_allow_host_check) */
	bool block_private_ips;
	char **add_hosts;      /* NULL-terminated "ip host" lines (/etc/hosts form) */
	const struct net_publish *publish;
	size_t n_publish;
	struct ml_logger *log;  /* the sandbox's vm.log: the thread's diagnostics go there */
	const struct mitm_intercept *intercept;  /* NULL: no interception (mitm_config.intercept) */
	const char *runtime_dir;  /* slirpnet_config.runtime_dir: inside the VM's dir, so gc finds it */
};

struct net;
/* Builds slirpnet and mitm for this VM's frame stream (engine_fd, not owned), binds the port
 * forwards (an error names the one that failed: "start port-forward listener: listen tcp
 * A:P: bind: <reason>"), and starts the network thread. */
int net_start(int engine_fd, const struct net_opts *o, struct net **out, struct ml_err *e);
/* Stops the thread, logs the counters (info level: "net: ..." lines), frees everything and
 * closes every flow and forward. NULL-safe. A control call still waiting returns an error. */
void net_stop(struct net *n);

/* ---- control (any thread) ---- */

enum net_allow_op { NET_ALLOW_GET, NET_ALLOW_SET, NET_ALLOW_ADD, NET_ALLOW_DELETE };
/* Reads or changes the running VM's allow-list (mitm_allow_update: SET replaces, ADD appends
 * what is not there yet, DELETE removes; entries are trimmed, blanks ignored, each checked
 * first and nothing changes on an error). New connections and DNS questions see the change
 * at once. *changed gets the entries really added or removed (SET: the new list; GET: NULL),
 * *current the whole list now: malloc'd NULL-terminated lists (free with strv_free), either
 * pointer may be NULL. An empty list means every host is allowed. Returns 0 or -errno, e set. */
int net_allow_list(struct net *n, enum net_allow_op op, char *const *hosts, size_t n_hosts,
		   char ***changed, char ***current, struct ml_err *e);

/* Replaces the set of host->guest TCP forwards: the previous listeners are closed first, then
 * each of fwd is bound (host_port 0: a free port). On success bound[i] (room for n_fwd) is
 * fwd[i] with the port really bound. Errors (e->msg, one line; no forward is left then):
 *   "bind local port-forward listener: duplicate listen address 127.0.0.1:8080"
 *   "bind local port-forward listener 127.0.0.1:8080: listen tcp 127.0.0.1:8080: bind:
 *    address already in use" */
int net_forwards_set(struct net *n, const struct net_publish *fwd, size_t n_fwd, struct net_publish *bound,
		     struct ml_err *e);

/* ---- per-flow network events (any thread) ---- */

/* One policy verdict: a TCP connection the guest opened (allowed or not) or a DNS question
 * refused; with interception also one per proxied HTTP(S) exchange or refusal (http set:
 * the fields of an rpc `event` of type network). Strings are copies, truncated to fit; no secret value is
 * ever in one (URLs carry the guest's placeholders). */
struct net_event {
	int64_t unix_ms;       /* wall clock when it happened */
	bool dns;              /* a refused DNS question, not a connection */
	bool http;             /* an intercepted exchange: the fields below are set */
	bool blocked;
	struct sockaddr_in dst;  /* connection: the destination; DNS: the server asked */
	char host[256];        /* the name if known (DNS question, the allowed name matched, or
				* the Host / SNI of an exchange) */
	uint16_t qtype;        /* DNS */
	char reason[64];       /* e.g. "host not in allowlist", "private address", "allowlist" */
	/* http only */
	char method[16];       /* "" for a TLS connection refused before any request */
	char url[320];         /* scheme://host/path?query as the guest sent it */
	int status;            /* 0 when no response was sent */
	uint64_t request_bytes, response_bytes;
	uint32_t duration_ms;
};

/* Becomes readable (POLLIN) while events wait; never read it yourself. Owned by n. */
int net_events_fd(const struct net *n);
/* Moves up to max waiting events into out, oldest first; returns how many. *dropped (if not
 * NULL): events lost so far because the queue (1024) was full. */
size_t net_events_read(struct net *n, struct net_event *out, size_t max, uint64_t *dropped);

#endif
