/* rpc/net_internal.h - state shared by rpc/net.c (the network thread) and rpc/netctl.c (its
 * control calls and event queue). Not for other files. */
#ifndef ML_RPC_NET_INTERNAL_H
#define ML_RPC_NET_INTERNAL_H

#include <poll.h>
#include <pthread.h>

#include "mitm/mitm.h"
#include "rpc/net.h"
#include "slirpnet/slirpnet.h"
#include "vmm/vmm.h"

#define ABORT_QUEUE_MAX 256
#define NET_EVENTS_MAX 1024
#define NET_FORWARDS_MAX 256

struct abort_req {
	struct sockaddr_in src, dst;
};

/* One control call, waiting for the network thread (the caller's stack holds it). */
struct net_cmd {
	enum { NET_CMD_ALLOW, NET_CMD_FORWARDS } kind;
	enum net_allow_op op;
	char *const *hosts;
	size_t n_hosts;
	char ***changed, ***current;
	const struct net_publish *fwd;
	size_t n_fwd;
	struct net_publish *bound;
	struct ml_err *e;
	int result;
	bool done;
};

struct net {
	int engine_fd;
	int wake_fd;           /* eventfd: stop */
	struct ml_logger *log; /* the sandbox's logger, bound to the network thread */
	pthread_t thread;
	bool running;
	struct vmm_netstream *ns;
	struct slirpnet *sn;
	struct mitm *m;
	struct mitm_add_host *add_hosts;
	size_t n_add_hosts;
	struct pollfd *pfds;
	size_t pfd_cap;
	struct abort_req aborts[ABORT_QUEUE_MAX];
	size_t n_aborts;
	uint8_t *frame;        /* one output frame */
	size_t frame_cap;
	const char *end_reason;

	/* control: calls are served one at a time (call_lock); lock guards cmd, thread_done and
	 * the event queue */
	pthread_mutex_t call_lock, lock;
	pthread_cond_t cond;
	bool sync_init;
	int cmd_fd;            /* eventfd: a command waits in cmd */
	struct net_cmd *cmd;
	bool thread_done;
	struct net_publish fwds[NET_FORWARDS_MAX];  /* live forwards, ports as bound */
	size_t n_fwds;

	/* events */
	struct mitm_intercept icpt;  /* the sandbox's, with the event callback pointed at us */
	int ev_fd;             /* eventfd: readable while the queue is not empty */
	struct net_event *evq;
	size_t ev_head, ev_count;
	uint64_t ev_dropped;
};

/* netctl.c */
int netctl_init(struct net *n, struct ml_err *e);
void netctl_free(struct net *n);
/* On the network thread when cmd_fd is readable: runs the waiting command and answers it. */
void netctl_serve(struct net *n);
/* The network thread is ending: waiting and later calls fail. */
void netctl_thread_done(struct net *n);
/* mitm's event callback (network thread): one event into the queue. */
void netctl_on_event(void *arg, const struct mitm_event *ev);
/* The proxies' callback (network thread): one intercepted exchange or refusal into the queue. */
void netctl_on_http_event(void *arg, const struct mitm_http_event *ev);
/* Replaces the forwards (network thread, or before it starts). Errors begin "start
 * port-forward listener: " at create (at_start), "bind local port-forward listener ..." later. */
int netctl_forwards_set(struct net *n, const struct net_publish *fwd, size_t n_fwd, struct net_publish *bound,
			bool at_start, struct ml_err *e);

#endif
