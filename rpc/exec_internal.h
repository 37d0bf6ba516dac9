/* rpc/exec_internal.h - the guest-command engine behind every exec-like method (exec.c), shared
 * with the file methods (files.c). */
#ifndef ML_RPC_EXEC_INTERNAL_H
#define ML_RPC_EXEC_INTERNAL_H

#include "rpc/server_internal.h"

/* Buffered output (exec, read_file, list_files) stops being collected past this; the request
 * then fails instead of making one response line of unbounded size. */
#define RPC_EXEC_COLLECT_MAX (48u << 20)

enum exec_mode { EXEC_BUFFERED, EXEC_STREAM, EXEC_PIPE, EXEC_TTY, EXEC_LAUNCH };

struct in_chunk {
	struct in_chunk *next;
	size_t len, off;
	uint8_t data[];
};

struct out_buf {
	uint8_t *buf;
	size_t len;
};

struct exec_op {
	struct rpc_server *srv;
	struct exec_op *prev, *next;     /* the server's list (s->ops) */
	struct rpc_req *req;             /* NULL once answered */
	enum exec_mode mode;
	int refs;                        /* the guest (until EXIT), notifications in flight, timers */
	uint32_t stream;
	bool started, exited, vm_gone, fileop;
	int code;
	int64_t t0;
	struct out_buf out[3];           /* [1] stdout, [2] stderr (buffered modes) */
	size_t collected;
	bool too_much;
	struct in_chunk *in_head, *in_tail;
	size_t in_chunks;
	bool in_eof, in_eof_sent;
	uint8_t *stdin_data;             /* one whole stdin (write_file), owned */
	size_t stdin_len, stdin_off;
	/* files.c: answers r instead of the default answer; code 0 = the guest command exited
	 * (op->code, op->out), else the error to report (RPC_* code, msg). */
	void (*on_done)(struct exec_op *op, struct rpc_req *r, int code, const char *msg);
	void (*launch_result)(void *arg, int code, const char *err);
	void *launch_arg;
	int launch_timer;
};

struct exec_op *exec_op_new(struct rpc_server *s, struct rpc_req *r, enum exec_mode mode);
/* Sends the exec; on failure the request is answered and the op released. */
int exec_op_start(struct exec_op *op, const struct proto_exec *x);
/* The VM is closing or dead: answer what waits, touch the VM no more. channel_freed: the
 * control channel is freed next (no stream end will be reported). */
void exec_ops_vm_gone(struct rpc_server *s, bool channel_freed);

/* files.c: the agent's `list` records (guest bytes, all lengths checked) as the protocol's
 * sorted FileInfo array; NULL if malformed. Exposed for the fuzz target. */
json_t *rpc_listing_decode(const uint8_t *data, size_t len);

#endif
