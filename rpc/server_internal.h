/* rpc/server_internal.h - what the files of the JSON-RPC server share: connections, requests,
 * the VM session. server.c dispatches; exec.c, files.c, methods.c, create.c implement methods. */
#ifndef ML_RPC_SERVER_INTERNAL_H
#define ML_RPC_SERVER_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "rpc/createopts.h"
#include "rpc/jsonrpc.h"
#include "rpc/net.h"
#include "rpc/server.h"

/* Bytes of notifications a connection may have queued before producers (exec output, log
 * streams) wait for the client to read: a client that stops reading is not a memory leak. */
#define RPC_OUT_HIGH_WATER (8u << 20)

struct rpc_req;
struct rpc_client;
struct exec_op;

/* What a method in flight can be asked to do. All optional. */
struct rpc_op_ops {
	void (*cancel)(struct rpc_req *r);                      /* `cancel` or the client left */
	int (*input)(struct rpc_req *r, const uint8_t *d, size_t n); /* stdin (n = 0: EOF); -EAGAIN: full */
	void (*resize)(struct rpc_req *r, uint16_t rows, uint16_t cols);
};

struct rpc_req {
	struct rpc_client *cl;
	struct rpc_req *prev, *next;     /* the client's in-flight list */
	bool has_id;
	uint64_t id;
	char method[32];
	json_t *params;                  /* owned; may be NULL */
	bool cancelled;
	const struct rpc_op_ops *ops;
	void *op;                        /* the method's own state */
	int64_t started_ms;
};

struct rpc_client {
	struct rpc_server *srv;
	struct rpc_client *next;
	struct rpc_conn *conn;
	bool primary;
	bool gone;                       /* its conn closed; freed once nothing refers to it */
	struct rpc_req *inflight;
	size_t n_inflight;
	struct rpc_req *barrier;         /* a create/close waiting for the in-flight to finish */
	struct rpc_req *barrier_running; /* create/close in progress: input stays paused */
	bool input_blocked;              /* an exec's stdin queue is full: input paused */
	int holds;                       /* > 0 while the server walks its requests: not freed */
	struct net_publish *fwd;         /* the port forwards this client asked for (they end with it) */
	size_t n_fwd;
};

/* The VM the server works on. */
struct rpc_vm {
	struct sandbox *sb;
	bool owned;                      /* created by `create` (closed by close/EOF), not `run`'s */
	bool ready;
	struct rpc_create *create;       /* the parsed create options (owned), NULL when attached */
	struct rpc_exec_defaults def;    /* owned copies */
	bool intercept;                  /* allow-list changes allowed at run time */
	struct exec_op *launched;        /* the image entrypoint started by launch_entrypoint */
	int events_watch;                /* net events fd watched (-1: none) */
	int file_events_watch;           /* the workspace's file events fd watched (-1: none) */
};

struct rpc_server {
	struct rpc_server_opts o;
	struct rpc_client *clients;
	struct rpc_vm vm;
	struct exec_op *ops;             /* every guest command in flight (exec.c) */
	struct offload *offloads;        /* blocking work on threads of its own (offload.c) */
	int offload_pipe[2];
	bool closed;                     /* the primary sent `close` or went away */
	bool done_called;
	int defer_timer;
	struct net_publish *base_fwd;    /* forwards the VM was created with (run -p) */
	size_t n_base_fwd;
	int listen_fd;                   /* the VM's control socket (ctlsock.c), -1 when not served */
	char *listen_path;
};

/* server.c */
void rpc_reply(struct rpc_req *r, json_t *result);
void rpc_reply_error(struct rpc_req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A request-scoped notification: params gets "id" = the request id. written(arg, sent) runs
 * when the line left (for credits). Returns 0 or -errno (the client is gone). */
int rpc_notify(struct rpc_req *r, const char *method, json_t *params, void (*written)(void *, bool), void *arg);
/* A notification for the primary client (event). Dropped when its queue is past the mark. */
void rpc_broadcast_event(struct rpc_server *s, json_t *params);
/* Whether the client's output is past the high-water mark (producers should wait). */
bool rpc_client_congested(const struct rpc_client *cl);
/* Called by producers that waited on congestion: re-check from the loop soon. */
void rpc_req_detach_op(struct rpc_req *r);

/* Method entry points (params already in r->params). */
void rpc_m_exec(struct rpc_req *r);          /* exec, exec_stream, exec_pipe, exec_tty */
void rpc_m_write_file(struct rpc_req *r);
void rpc_m_read_file(struct rpc_req *r);
void rpc_m_list_files(struct rpc_req *r);
void rpc_m_log(struct rpc_req *r);
void rpc_m_log_stream(struct rpc_req *r);
void rpc_m_allow_list(struct rpc_req *r);    /* allow_list_add, allow_list_delete */
void rpc_m_port_forward(struct rpc_req *r);     /* port_forward (replaces), port_forward_add */
/* methods.c: binds the union of every client's forwards (a client's end removes its own). */
int rpc_forwards_apply(struct rpc_server *s, struct ml_err *e);
void rpc_m_status(struct rpc_req *r);
void rpc_m_create(struct rpc_req *r);
void rpc_m_close(struct rpc_req *r);

/* server.c: cancels every request in flight on every connection (the VM is closing). */
void rpc_server_cancel_all(struct rpc_server *s);
/* create.c: tear the VM down (graceful up to timeout_ms), record it stopped; NULL-safe.
 * done(arg) runs once it is gone. */
void rpc_vm_close(struct rpc_server *s, int timeout_ms, void (*done)(void *arg), void *arg);

/* exec.c: starts the image entrypoint for launch_entrypoint (pipe mode, empty stdin, output to
 * the VM log); result(arg, code, err) after it exited or after wait_ms if still running
 * (code -1, err NULL then). */
int rpc_launch(struct rpc_server *s, char **argv, int wait_ms,
	       void (*result)(void *arg, int code, const char *err), void *arg);
void rpc_launch_stop(struct rpc_server *s);

/* offload.c: fn(arg) on a thread of its own, then done(arg) on the loop. join_all waits for
 * every one still running and runs their done (before the VM they use goes away). */
struct offload;
int rpc_offload(struct rpc_server *s, void (*fn)(void *arg), void (*done)(void *arg), void *arg);
void rpc_offload_join_all(struct rpc_server *s);
void rpc_offload_close(struct rpc_server *s);

/* Small JSON param readers: 0, or -EINVAL with e set to the decoder's message. */
int rpc_param_str(json_t *params, const char *key, bool required, const char **out, struct ml_err *e);
int rpc_param_u64(json_t *params, const char *key, bool required, uint64_t *out, struct ml_err *e);

#endif
