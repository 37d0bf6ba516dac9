/* rpc/exec.c - one guest command per request: exec (buffered), exec_stream, exec_pipe,
 * exec_tty, the launched image entrypoint, and the agent's file operations (files.c).
 *
 * Flow control end to end: a chunk of output becomes one notification line; the guest gets
 * its CREDIT only when that line has been written to the client. So a client that stops
 * reading stalls that command (its pipe fills in the guest), never our memory. Buffered modes
 * collect up to RPC_EXEC_COLLECT_MAX bytes and credit at once.
 *
 * An op outlives its request when the request was cancelled (answered -32003 at once) or its
 * client left: the guest process is being killed (SIGTERM, SIGKILL after 5 s) and the op goes
 * away at its EXIT, so a reused stream id is never credited by mistake. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "base/strv.h"
#include "rpc/exec_internal.h"

#define STDIN_QUEUE_MAX 64   /* chunks; a fuller queue pauses the client's input */

static void op_unref(struct exec_op *op)
{
	if (--op->refs > 0)
		return;
	for (int i = 0; i < 3; i++)
		free(op->out[i].buf);
	while (op->in_head) {
		struct in_chunk *c = op->in_head;
		op->in_head = c->next;
		free(c);
	}
	free(op->stdin_data);
	if (op->srv->vm.launched == op)
		op->srv->vm.launched = NULL;
	if (op->prev)
		op->prev->next = op->next;
	else if (op->srv->ops == op)
		op->srv->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	free(op);
}

static void kick(struct exec_op *op)
{
	if (!op->vm_gone)
		sandbox_kick(op->srv->vm.sb);
}

/* ---- answering ---- */
static void answer_error(struct exec_op *op, int code, const char *msg)
{
	struct rpc_req *r = op->req;
	if (!r)
		return;
	op->req = NULL;
	r->op = NULL;
	r->ops = NULL;
	if (op->on_done)
		op->on_done(op, r, code, msg);
	else
		rpc_reply_error(r, code, "%s", msg);
}

static json_t *b64_json(const uint8_t *d, size_t n)
{
	_cleanup_free_ char *s = ml_b64_encode(d ? d : (const uint8_t *)"", n);
	return s ? json_string(s) : NULL;
}

static void answer_exit(struct exec_op *op)
{
	struct rpc_req *r = op->req;
	if (!r)
		return;
	if (op->too_much) {
		char msg[128];
		snprintf(msg, sizeof(msg), "the command's output exceeded %u bytes (use exec_stream)", RPC_EXEC_COLLECT_MAX);
		answer_error(op, RPC_EXEC_FAILED, msg);
		return;
	}
	op->req = NULL;
	r->op = NULL;
	r->ops = NULL;
	if (op->on_done) {
		op->on_done(op, r, 0, NULL);
		return;
	}
	json_int_t ms = (json_int_t)(ml_now_ms() - op->t0);
	json_t *res = json_pack("{s:i, s:I}", "exit_code", op->code, "duration_ms", ms);
	if (op->mode == EXEC_BUFFERED) {
		json_object_set_new(res, "stdout", b64_json(op->out[1].buf, op->out[1].len));
		json_object_set_new(res, "stderr", b64_json(op->out[2].buf, op->out[2].len));
	}
	rpc_reply(r, res);
}

/* ---- guest callbacks ---- */
struct written_ctx {
	struct exec_op *op;
	size_t n;
};

static void on_written(void *arg, bool sent)
{
	(void)sent;
	struct written_ctx *w = arg;
	struct exec_op *op = w->op;
	if (!op->exited && !op->vm_gone) {
		ctl_exec_consumed(sandbox_ctl(op->srv->vm.sb), op->stream, w->n);
		kick(op);
	}
	free(w);
	op_unref(op);
}

static void collect(struct exec_op *op, int fd, const uint8_t *d, size_t n)
{
	struct out_buf *b = &op->out[fd == 2 ? 2 : 1];
	if (op->collected + n > RPC_EXEC_COLLECT_MAX) {
		op->too_much = true;
		return;
	}
	uint8_t *nb = realloc(b->buf, b->len + n);
	if (!nb) {
		op->too_much = true;
		return;
	}
	b->buf = nb;
	memcpy(b->buf + b->len, d, n);
	b->len += n;
	op->collected += n;
}

static void on_output(void *arg, int fd, const uint8_t *d, size_t n)
{
	struct exec_op *op = arg;
	struct ctl *ctl = sandbox_ctl(op->srv->vm.sb);
	if (n == 0)
		return;
	if (op->mode == EXEC_LAUNCH)
		ml_logger_write(sandbox_logger(op->srv->vm.sb), d, n);
	if (op->mode == EXEC_BUFFERED || op->mode == EXEC_LAUNCH || !op->req) {
		if (op->mode == EXEC_BUFFERED && op->req)
			collect(op, fd, d, n);
		ctl_exec_consumed(ctl, op->stream, n);
		kick(op);
		return;
	}
	char method[48];
	snprintf(method, sizeof(method), "%s.%s", op->req->method, fd == 2 ? "stderr" : "stdout");
	struct written_ctx *w = malloc(sizeof(*w));
	json_t *p = json_object();
	json_t *data = b64_json(d, n);
	if (!w || !p || !data) {
		free(w);
		json_decref(p);
		json_decref(data);
		ctl_exec_consumed(ctl, op->stream, n);
		kick(op);
		return;
	}
	json_object_set_new(p, "data", data);
	*w = (struct written_ctx){ op, n };
	op->refs++;
	rpc_notify(op->req, method, p, on_written, w);
}

static void on_exited(void *arg, int code, int sig)
{
	(void)sig;
	struct exec_op *op = arg;
	op->exited = true;
	op->code = code;
	if (op->launch_result) {
		void (*fn)(void *, int, const char *) = op->launch_result;
		op->launch_result = NULL;
		fn(op->launch_arg, code, NULL);
	}
	answer_exit(op);
	op_unref(op); /* the guest's reference */
}

static void on_failed(void *arg, const char *msg)
{
	struct exec_op *op = arg;
	op->exited = true;
	if (op->launch_result) {
		void (*fn)(void *, int, const char *) = op->launch_result;
		op->launch_result = NULL;
		fn(op->launch_arg, -1, msg);
	}
	answer_error(op, op->fileop ? RPC_FILE_FAILED : RPC_EXEC_FAILED, msg);
	op_unref(op);
}

static void pump_stdin(struct exec_op *op);
static void on_stdin_ready(void *arg) { pump_stdin(arg); }

static const struct ctl_exec_ops guest_ops = {
	.output = on_output, .exited = on_exited, .failed = on_failed, .stdin_ready = on_stdin_ready,
};

/* ---- stdin ---- */
static void pump_stdin(struct exec_op *op)
{
	if (op->exited || op->vm_gone || !op->started)
		return;
	struct ctl *ctl = sandbox_ctl(op->srv->vm.sb);
	bool was_full = op->in_chunks >= STDIN_QUEUE_MAX;
	while (op->in_head) {
		struct in_chunk *c = op->in_head;
		ssize_t t = ctl_exec_stdin(ctl, op->stream, c->data + c->off, c->len - c->off);
		if (t < 0)
			break;
		c->off += (size_t)t;
		if (c->off < c->len)
			break; /* the window is full: on_stdin_ready comes back */
		op->in_head = c->next;
		if (!op->in_head)
			op->in_tail = NULL;
		op->in_chunks--;
		free(c);
	}
	/* a single big stdin (write_file) is fed from its buffer, a window at a time */
	while (!op->in_head && op->stdin_data && op->stdin_off < op->stdin_len) {
		ssize_t t = ctl_exec_stdin(ctl, op->stream, op->stdin_data + op->stdin_off, op->stdin_len - op->stdin_off);
		if (t <= 0)
			break;
		op->stdin_off += (size_t)t;
	}
	bool drained = !op->in_head && (!op->stdin_data || op->stdin_off == op->stdin_len);
	if (drained && op->in_eof && !op->in_eof_sent) {
		op->in_eof_sent = true;
		ctl_exec_stdin(ctl, op->stream, NULL, 0);
	}
	kick(op);
	if (was_full && op->in_chunks < STDIN_QUEUE_MAX && op->req)
		rpc_req_detach_op(op->req);
}

static int op_input(struct rpc_req *r, const uint8_t *d, size_t n)
{
	struct exec_op *op = r->op;
	if (!op || op->in_eof)
		return 0;
	if (n == 0) {
		op->in_eof = true;
		pump_stdin(op);
		return 0;
	}
	struct in_chunk *c = malloc(sizeof(*c) + n);
	if (!c)
		return -ENOMEM;
	*c = (struct in_chunk){ .len = n };
	memcpy(c->data, d, n);
	if (op->in_tail)
		op->in_tail->next = c;
	else
		op->in_head = c;
	op->in_tail = c;
	op->in_chunks++;
	pump_stdin(op);
	return op->in_chunks >= STDIN_QUEUE_MAX ? -EAGAIN : 0;
}

static void op_resize(struct rpc_req *r, uint16_t rows, uint16_t cols)
{
	struct exec_op *op = r->op;
	if (op && op->started && !op->exited && !op->vm_gone) {
		ctl_exec_resize(sandbox_ctl(op->srv->vm.sb), op->stream, rows, cols);
		kick(op);
	}
}

static void op_cancel(struct rpc_req *r)
{
	struct exec_op *op = r->op;
	if (!op)
		return;
	if (op->started && !op->exited && !op->vm_gone) {
		ctl_exec_cancel(sandbox_ctl(op->srv->vm.sb), op->stream);
		kick(op);
	}
	answer_error(op, RPC_CANCELLED, "context canceled");
}

static const struct rpc_op_ops req_ops = { .cancel = op_cancel, .input = op_input, .resize = op_resize };

/* ---- starting ---- */
struct exec_op *exec_op_new(struct rpc_server *s, struct rpc_req *r, enum exec_mode mode)
{
	struct exec_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	*op = (struct exec_op){ .srv = s, .req = r, .mode = mode, .refs = 1, .t0 = ml_now_ms() };
	op->next = s->ops;
	if (s->ops)
		s->ops->prev = op;
	s->ops = op;
	if (r) {
		r->op = op;
		r->ops = &req_ops;
	}
	return op;
}

int exec_op_start(struct exec_op *op, const struct proto_exec *x)
{
	int rc = ctl_exec(sandbox_ctl(op->srv->vm.sb), x, &guest_ops, op, &op->stream);
	if (rc < 0) {
		op->exited = true;
		char msg[128];
		snprintf(msg, sizeof(msg), "sending the command to the guest failed: %s", strerror(-rc));
		if (op->launch_result) {
			void (*fn)(void *, int, const char *) = op->launch_result;
			op->launch_result = NULL;
			fn(op->launch_arg, -1, msg);
		}
		answer_error(op, op->fileop ? RPC_FILE_FAILED : RPC_EXEC_FAILED, msg);
		op_unref(op);
		return rc;
	}
	op->started = true;
	pump_stdin(op);
	return 0;
}

/* The VM is going away: no op may touch it again, and requests still waiting are answered
 * (cancelled if they were, else the VM's end). Each op keeps the guest's reference while the
 * control channel lives, because the channel still reports every stream's end (EXIT, or a
 * failure when it breaks) and calls back into the op; only when the channel is about to be
 * freed (channel_freed: sandbox_destroy follows) does no report come, and the reference goes
 * here. (A graceful close or a dead engine must not free ops the channel still holds.) */
void exec_ops_vm_gone(struct rpc_server *s, bool channel_freed)
{
	for (struct exec_op *op = s->ops; op; op = op->next)
		op->vm_gone = true;
	struct exec_op *op = s->ops;
	while (op) {
		struct exec_op *next = op->next;
		op->refs++;
		if (op->launch_result) {
			void (*fn)(void *, int, const char *) = op->launch_result;
			op->launch_result = NULL;
			fn(op->launch_arg, -1, "the VM was closed");
		}
		if (op->req)
			answer_error(op, op->req->cancelled ? RPC_CANCELLED : RPC_VM_FAILED,
				     op->req->cancelled ? "context canceled" : "the VM was closed");
		if (channel_freed && !op->exited) {
			op->exited = true;
			op_unref(op); /* the guest's reference: no EXIT will come */
		}
		op_unref(op);
		op = next;
	}
}

/* `sh -c <command>` with the VM's defaults: request working_dir, then the VM's (image WORKDIR,
 * workspace), then "/"; request user, then the VM's (image USER), then root. */
static void fill_exec(struct rpc_server *s, const char *cmd, const char *cwd, const char *user, char **argv,
		      struct proto_exec *x)
{
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = (char *)cmd;
	argv[3] = NULL;
	const struct rpc_exec_defaults *d = &s->vm.def;
	*x = (struct proto_exec){
		.argv = argv, .env = d->env,
		.cwd = (char *)(cwd && *cwd ? cwd : d->cwd && *d->cwd ? d->cwd : "/"),
		.user = (char *)(user && *user ? user : d->user && *d->user ? d->user : NULL),
		.flags = d->privileged ? EXF_PRIVILEGED : 0,
	};
}

void rpc_m_exec(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	if (!s->vm.sb || !s->vm.ready) {
		rpc_reply_error(r, RPC_VM_FAILED, "VM not created");
		return;
	}
	struct ml_err e = { 0 };
	const char *cmd, *cwd, *user;
	uint64_t rows = 0, cols = 0;
	if (!json_is_object(r->params) || rpc_param_str(r->params, "command", true, &cmd, &e) < 0 ||
	    rpc_param_str(r->params, "working_dir", false, &cwd, &e) < 0 ||
	    rpc_param_str(r->params, "user", false, &user, &e) < 0 ||
	    rpc_param_u64(r->params, "rows", false, &rows, &e) < 0 ||
	    rpc_param_u64(r->params, "cols", false, &cols, &e) < 0) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "%s", e.msg[0] ? e.msg : "params are required");
		return;
	}
	enum exec_mode mode = !strcmp(r->method, "exec") ? EXEC_BUFFERED : !strcmp(r->method, "exec_stream") ? EXEC_STREAM
			      : !strcmp(r->method, "exec_pipe") ? EXEC_PIPE : EXEC_TTY;
	char *argv[4];
	struct proto_exec x;
	fill_exec(s, cmd, cwd, user, argv, &x);
	if (mode == EXEC_PIPE)
		x.flags |= EXF_STDIN;
	if (mode == EXEC_TTY) {
		x.flags |= EXF_STDIN | EXF_TTY;
		x.rows = rows && rows < 65536 ? (uint16_t)rows : 24;
		x.cols = cols && cols < 65536 ? (uint16_t)cols : 80;
	}
	struct exec_op *op = exec_op_new(s, r, mode);
	if (!op) {
		rpc_reply_error(r, RPC_EXEC_FAILED, "out of memory");
		return;
	}
	/* ready goes out before the process starts: the client may send stdin right after it */
	if (mode == EXEC_PIPE || mode == EXEC_TTY)
		rpc_notify(r, mode == EXEC_PIPE ? "exec_pipe.ready" : "exec_tty.ready", json_object(), NULL, NULL);
	exec_op_start(op, &x);
}

/* ---- launch_entrypoint ---- */
static void launch_timeout(struct ml_loop *l, void *arg)
{
	(void)l;
	struct exec_op *op = arg;
	op->launch_timer = 0;
	if (op->launch_result) {
		void (*fn)(void *, int, const char *) = op->launch_result;
		op->launch_result = NULL;
		fn(op->launch_arg, -2, NULL); /* still running: fine */
	}
	op_unref(op);
}

int rpc_launch(struct rpc_server *s, char **argv, int wait_ms, void (*result)(void *, int, const char *),
	       void *arg)
{
	struct exec_op *op = exec_op_new(s, NULL, EXEC_LAUNCH);
	if (!op) {
		result(arg, -1, "out of memory");
		return -ENOMEM;
	}
	op->launch_result = result;
	op->launch_arg = arg;
	const struct rpc_exec_defaults *d = &s->vm.def;
	struct proto_exec x = { .argv = argv, .env = d->env, .cwd = (char *)(d->cwd ? d->cwd : "/"),
				.user = (char *)d->user, .flags = d->privileged ? EXF_PRIVILEGED : 0 };
	op->refs++; /* the timer's */
	op->launch_timer = ml_loop_timer(s->o.loop, wait_ms, launch_timeout, op);
	s->vm.launched = op;
	return exec_op_start(op, &x);
}

void rpc_launch_stop(struct rpc_server *s)
{
	struct exec_op *op = s->vm.launched;
	s->vm.launched = NULL;
	if (!op)
		return;
	if (op->launch_timer) {
		ml_loop_cancel(s->o.loop, op->launch_timer);
		op->launch_timer = 0;
		op_unref(op);
	}
	if (op->started && !op->exited && !op->vm_gone) {
		ctl_exec_cancel(sandbox_ctl(s->vm.sb), op->stream);
		kick(op);
	}
}
