/* rpc/net.h - a sandbox's guest network: the engine's frame stream -> slirpnet -> mitm, run on
 * a thread of its own so that bulk transfers and hundreds of flows never delay the control
 * channel (and the reverse). Internal to rpc/ (sandbox.c composes it). */
#ifndef ML_RPC_NET_H
#define ML_RPC_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "base/logfile.h"

struct net_publish {
	struct in_addr addr;   /* host address to listen on */
	int host_port, guest_port;
};

struct net_opts {
	unsigned mtu;
	char **dns;            /* NULL-terminated IPv4 literals (already validated) */
	char **allow_hosts;    /* NULL-terminated globs */
	bool block_private_ips;
	char **add_hosts;      /* NULL-terminated "ip host" lines (/etc/hosts form) */
	const struct net_publish *publish;
	size_t n_publish;
	struct ml_logger *log;  /* the sandbox's vm.log: the thread's diagnostics go there */
	const struct mitm_intercept *intercept;  /* NULL: no interception (mitm_config.intercept) */
};

struct net;
/* Builds slirpnet and mitm for this VM's frame stream (engine_fd, not owned), binds the port
 * forwards (an error names the one that failed), and starts the network thread. */
int net_start(int engine_fd, const struct net_opts *o, struct net **out, struct ml_err *e);
/* Stops the thread, logs the counters (info level: "net: ..." lines), frees everything and
 * closes every flow. NULL-safe. */
void net_stop(struct net *n);

#endif
