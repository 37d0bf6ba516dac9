/* rpc/jsonrpc.h - newline-delimited JSON on a pair of fds, driven by a struct ml_loop: one
 * connection of the JSON-RPC server (the SDK's stdio, or a client of a VM's control socket).
 *
 * Input: lines up to max_line bytes; a longer line is skipped to its end without being kept
 * (memory stays bounded) and reported as `overlong`, with the request id when its tail shows
 * one. Output: whole lines, queued and written without blocking; each may carry a callback
 * run once its last byte is written, which is how exec output is credited back to the guest
 * only when the client has taken it (a client that stops reading slows the guest down instead
 * of growing our memory). Writes never interleave inside a line. */
#ifndef ML_RPC_JSONRPC_H
#define ML_RPC_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/loop.h"

#define RPC_MAX_LINE (64u << 20)

struct rpc_conn;
struct rpc_conn_ops {
	/* One line (NUL-terminated; may be modified). Empty lines are skipped before this. */
	void (*line)(void *arg, struct rpc_conn *c, char *line, size_t len);
	/* A line longer than max_line was dropped. has_id: its tail ended with "id":N. */
	void (*overlong)(void *arg, struct rpc_conn *c, bool has_id, uint64_t id);
	/* The input reached EOF or failed, or the output failed (the peer is gone). Once. */
	void (*closed)(void *arg, struct rpc_conn *c);
};

/* in_fd and out_fd may be the same socket; they are made nonblocking and owned by the conn
 * (closed by rpc_conn_free), except fds 0..2, which are left open. */
int rpc_conn_new(struct ml_loop *l, int in_fd, int out_fd, size_t max_line, const struct rpc_conn_ops *ops,
		 void *arg, struct rpc_conn **out, struct ml_err *e);
void rpc_conn_free(struct rpc_conn *c);
/* Stops/resumes reading input (the server's barrier and back-pressure). */
void rpc_conn_pause(struct rpc_conn *c, bool paused);
/* Queues msg (reference stolen) as one line; written(arg) runs after it left (or when the
 * conn is freed or broken: then with sent = false). Returns 0 or -ENOMEM/-EPIPE. */
int rpc_conn_send(struct rpc_conn *c, json_t *msg, void (*written)(void *arg, bool sent), void *arg);
/* Bytes queued and not yet written. */
size_t rpc_conn_queued(const struct rpc_conn *c);
bool rpc_conn_is_closed(const struct rpc_conn *c);
/* After `closed`, or to stop early: the callbacks of queued lines run (sent = false). */
void rpc_conn_shutdown(struct rpc_conn *c);
/* Blocks (up to timeout_ms) until the output queue is written out: for the last response
 * before a process exits. */
void rpc_conn_flush(struct rpc_conn *c, int timeout_ms);

/* Helpers to build messages (NULL on ENOMEM). id < 0: no "id" key. */
json_t *rpc_msg_result(bool has_id, uint64_t id, json_t *result /* stolen */);
json_t *rpc_msg_error(bool has_id, uint64_t id, int code, const char *message);
json_t *rpc_msg_notify(const char *method, json_t *params /* stolen */);

/* JSON-RPC error codes (the SDKs map them to their RPCError). */
enum {
	RPC_PARSE_ERROR = -32700,
	RPC_INVALID_REQUEST = -32600,
	RPC_METHOD_NOT_FOUND = -32601,
	RPC_INVALID_PARAMS = -32602,
	RPC_INTERNAL = -32603,
	RPC_VM_FAILED = -32000,
	RPC_EXEC_FAILED = -32001,
	RPC_FILE_FAILED = -32002,
	RPC_CANCELLED = -32003,
};

/* Standard base64 (RFC 4648 §4; line breaks skipped, padding required); -EINVAL on bad
 * input. The encoder is base/b64.h's ml_b64_encode. */
int rpc_b64_decode(const char *s, size_t slen, uint8_t **out, size_t *out_len);

#endif
