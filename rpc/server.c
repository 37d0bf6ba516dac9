/* rpc/server.c - the dispatcher: connections, request classes, in-flight tracking, barrier,
 * cancel, responses and notifications. The methods live in exec.c, files.c, methods.c and
 * create.c. Everything runs on the caller's loop thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "base/strv.h"
#include "rpc/server_internal.h"

enum method_class { M_CONCURRENT, M_IMMEDIATE, M_BARRIER, M_INPUT };

struct method {
	const char *name;
	enum method_class cls;
	void (*fn)(struct rpc_req *r);
	bool needs_id;          /* -32600 "<name> requires request id" without one */
	bool primary_only;      /* create/close: only the stdio client */
};

static void m_cancel(struct rpc_req *r);
static void m_input(struct rpc_req *r);
static void m_resize(struct rpc_req *r);

static const struct method methods[] = {
	{ "create", M_BARRIER, rpc_m_create, false, true },
	{ "close", M_BARRIER, rpc_m_close, false, true },
	{ "cancel", M_IMMEDIATE, m_cancel, false, false },
	{ "exec", M_CONCURRENT, rpc_m_exec, false, false },
	{ "exec_stream", M_CONCURRENT, rpc_m_exec, false, false },
	{ "exec_pipe", M_CONCURRENT, rpc_m_exec, true, false },
	{ "exec_tty", M_CONCURRENT, rpc_m_exec, true, false },
	{ "exec_pipe.stdin", M_INPUT, m_input, false, false },
	{ "exec_pipe.stdin_eof", M_INPUT, m_input, false, false },
	{ "exec_tty.stdin", M_INPUT, m_input, false, false },
	{ "exec_tty.stdin_eof", M_INPUT, m_input, false, false },
	{ "exec_tty.resize", M_INPUT, m_resize, false, false },
	{ "write_file", M_CONCURRENT, rpc_m_write_file, false, false },
	{ "read_file", M_CONCURRENT, rpc_m_read_file, false, false },
	{ "list_files", M_CONCURRENT, rpc_m_list_files, false, false },
	{ "log", M_CONCURRENT, rpc_m_log, false, false },
	{ "log_stream", M_CONCURRENT, rpc_m_log_stream, true, false },
	{ "allow_list_add", M_CONCURRENT, rpc_m_allow_list, false, false },
	{ "allow_list_delete", M_CONCURRENT, rpc_m_allow_list, false, false },
	{ "port_forward", M_CONCURRENT, rpc_m_port_forward, false, false },
	{ "port_forward_add", M_CONCURRENT, rpc_m_port_forward, false, false },
	{ "status", M_CONCURRENT, rpc_m_status, false, false },
	{ NULL, 0, NULL, false, false },
};

static void client_maybe_free(struct rpc_client *cl);
static void run_barrier(struct rpc_client *cl);
static void maybe_done(struct rpc_server *s);

/* From inside a request's answer, the server may not be freed: check on the next round. */
static void deferred_done(struct ml_loop *l, void *arg)
{
	(void)l;
	struct rpc_server *s = arg;
	s->defer_timer = 0;
	maybe_done(s);
}

static void maybe_done_later(struct rpc_server *s)
{
	if (!s->defer_timer)
		s->defer_timer = ml_loop_timer(s->o.loop, 0, deferred_done, s);
}

/* ---- output ---- */
static void send_line(struct rpc_client *cl, json_t *msg)
{
	if (!cl->gone)
		rpc_conn_send(cl->conn, msg, NULL, NULL);
	else
		json_decref(msg);
}

static void unlink_req(struct rpc_req *r)
{
	struct rpc_client *cl = r->cl;
	if (r->prev)
		r->prev->next = r->next;
	else if (cl->inflight == r)
		cl->inflight = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	cl->n_inflight--;
}

/* A request is over once it has been answered: free it, and let a waiting barrier run. */
static void barrier_finished(struct rpc_client *cl);

static void req_done(struct rpc_req *r)
{
	struct rpc_client *cl = r->cl;
	bool was_barrier = cl->barrier_running == r;
	unlink_req(r);
	if (was_barrier) {
		cl->barrier_running = NULL;
		barrier_finished(cl);
	}
	json_decref(r->params);
	free(r);
	/* the barrier itself is in the in-flight list: it runs when it is the only one left */
	if (cl->barrier && cl->n_inflight == 1 && !cl->barrier_running)
		run_barrier(cl);
	client_maybe_free(cl);
}

void rpc_reply(struct rpc_req *r, json_t *result)
{
	if (r->has_id)
		send_line(r->cl, rpc_msg_result(true, r->id, result));
	else
		json_decref(result);
	req_done(r);
}

void rpc_reply_error(struct rpc_req *r, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->has_id)
		send_line(r->cl, rpc_msg_error(true, r->id, code, msg));
	req_done(r);
}

int rpc_notify(struct rpc_req *r, const char *method, json_t *params, void (*written)(void *, bool), void *arg)
{
	if (!params)
		return written ? (written(arg, false), -ENOMEM) : -ENOMEM;
	json_object_set_new(params, "id", json_integer((json_int_t)r->id));
	if (r->cl->gone) {
		json_decref(params);
		if (written)
			written(arg, false);
		return -EPIPE;
	}
	return rpc_conn_send(r->cl->conn, rpc_msg_notify(method, params), written, arg);
}

bool rpc_client_congested(const struct rpc_client *cl)
{
	return !cl->gone && rpc_conn_queued(cl->conn) > RPC_OUT_HIGH_WATER;
}

void rpc_broadcast_event(struct rpc_server *s, json_t *params)
{
	for (struct rpc_client *cl = s->clients; cl; cl = cl->next) {
		if (!cl->primary || cl->gone || rpc_client_congested(cl))
			continue;
		send_line(cl, rpc_msg_notify("event", json_incref(params)));
	}
	json_decref(params);
}

/* ---- parameters ---- */
int rpc_param_str(json_t *params, const char *key, bool required, const char **out, struct ml_err *e)
{
	json_t *v = json_object_get(params, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return required ? ml_err_set(e, -EINVAL, "%s is required", key) : 0;
	if (!json_is_string(v))
		return ml_err_set(e, -EINVAL, "json: cannot unmarshal %s into Go struct field .%s of type string",
				  json_is_number(v) ? "number" : json_is_boolean(v) ? "bool" : json_is_array(v) ? "array" : "object",
				  key);
	*out = json_string_value(v);
	return 0;
}

int rpc_param_u64(json_t *params, const char *key, bool required, uint64_t *out, struct ml_err *e)
{
	json_t *v = json_object_get(params, key);
	*out = 0;
	if (!v || json_is_null(v))
		return required ? ml_err_set(e, -EINVAL, "%s is required", key) : 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return ml_err_set(e, -EINVAL, "json: cannot unmarshal %s into Go struct field .%s of type uint64",
				  json_is_string(v) ? "string" : "number", key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* ---- immediate and ordered-input methods ---- */
static struct rpc_req *find_inflight(struct rpc_client *cl, uint64_t id)
{
	for (struct rpc_req *r = cl->inflight; r; r = r->next)
		if (r->has_id && r->id == id)
			return r;
	return NULL;
}

static void cancel_req(struct rpc_req *r)
{
	if (r->cancelled)
		return;
	r->cancelled = true;
	if (r->ops && r->ops->cancel)
		r->ops->cancel(r);
}

static void m_cancel(struct rpc_req *r)
{
	struct ml_err e = { 0 };
	uint64_t target;
	if (!json_is_object(r->params) || rpc_param_u64(r->params, "id", true, &target, &e) < 0) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "%s", e.msg[0] ? e.msg : "id is required");
		return;
	}
	struct rpc_req *t = find_inflight(r->cl, target);
	bool live = t && t != r && !t->cancelled;
	if (live)
		cancel_req(t);
	rpc_reply(r, json_pack("{s:b}", "cancelled", live));
}

static void resume_input(struct rpc_client *cl);

/* stdin for an exec_pipe/exec_tty of this client; never answered, bad ones dropped. */
static void m_input(struct rpc_req *r)
{
	struct rpc_client *cl = r->cl;
	uint64_t target;
	const char *data = NULL;
	struct ml_err e;
	bool eof = strstr(r->method, "stdin_eof") != NULL;
	struct rpc_req *t = NULL;
	if (json_is_object(r->params) && rpc_param_u64(r->params, "id", true, &target, &e) == 0 &&
	    (eof || rpc_param_str(r->params, "data", true, &data, &e) == 0))
		t = find_inflight(cl, target);
	/* the stdin message must go to an exec of its own kind */
	bool kind_ok = t && !strncmp(t->method, r->method, strcspn(r->method, "."));
	if (kind_ok && t->ops && t->ops->input && !t->cancelled) {
		_cleanup_free_ uint8_t *buf = NULL;
		size_t n = 0;
		if (eof || rpc_b64_decode(data, strlen(data), &buf, &n) == 0) {
			if (eof)
				t->ops->input(t, NULL, 0);
			else if (n > 0 && t->ops->input(t, buf, n) == -EAGAIN) {
				/* back-pressure: stop reading this client until the exec takes more */
				cl->input_blocked = true;
				rpc_conn_pause(cl->conn, true);
			}
		}
	}
	r->has_id = false; /* never answered, even with an id */
	req_done(r);
}

static void m_resize(struct rpc_req *r)
{
	uint64_t target, rows, cols;
	struct ml_err e;
	if (json_is_object(r->params) && rpc_param_u64(r->params, "id", true, &target, &e) == 0 &&
	    rpc_param_u64(r->params, "rows", false, &rows, &e) == 0 &&
	    rpc_param_u64(r->params, "cols", false, &cols, &e) == 0) {
		struct rpc_req *t = find_inflight(r->cl, target);
		if (t && !strcmp(t->method, "exec_tty") && t->ops && t->ops->resize && rows && cols &&
		    rows < 65536 && cols < 65536)
			t->ops->resize(t, (uint16_t)rows, (uint16_t)cols);
	}
	r->has_id = false;
	req_done(r);
}

/* An exec whose stdin queue had filled drained it: read this client again. */
static void resume_input(struct rpc_client *cl)
{
	if (!cl->input_blocked || cl->gone)
		return;
	cl->input_blocked = false;
	if (!cl->barrier && !cl->barrier_running)
		rpc_conn_pause(cl->conn, false);
}

void rpc_req_detach_op(struct rpc_req *r)
{
	resume_input(r->cl);
}

/* ---- dispatch ---- */
static const struct method *find_method(const char *name)
{
	for (const struct method *m = methods; m->name; m++)
		if (!strcmp(m->name, name))
			return m;
	return NULL;
}

static void run_barrier(struct rpc_client *cl)
{
	struct rpc_req *r = cl->barrier;
	cl->barrier = NULL;
	cl->barrier_running = r;
	find_method(r->method)->fn(r);
}

/* The barrier method answered: input flows again (after `close`, never: the line after it is
 * not processed; the process ends once the answer is out). */
static void barrier_finished(struct rpc_client *cl)
{
	if (!cl->gone && !cl->input_blocked && !cl->srv->closed)
		rpc_conn_pause(cl->conn, false);
	if (cl->srv->closed)
		maybe_done_later(cl->srv);
}

static bool parse_id(json_t *msg, bool *has_id, uint64_t *id)
{
	json_t *v = json_object_get(msg, "id");
	*has_id = false;
	if (!v || json_is_null(v))
		return true;
	/* an id that is not an unsigned integer makes the whole line undecodable */
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*has_id = true;
	*id = (uint64_t)json_integer_value(v);
	return true;
}

static void dispatch(struct rpc_client *cl, json_t *msg)
{
	bool has_id;
	uint64_t id = 0;
	json_t *jm = json_object_get(msg, "method"), *params = json_object_get(msg, "params");
	if (!parse_id(msg, &has_id, &id) || (jm && !json_is_string(jm)) ||
	    (params && !json_is_null(params) && !json_is_object(params))) {
		send_line(cl, rpc_msg_error(false, 0, RPC_PARSE_ERROR, "Parse error"));
		return;
	}
	const char *name = jm ? json_string_value(jm) : "";
	const struct method *m = find_method(name);
	if (m && m->primary_only && !cl->primary)
		m = NULL; /* control-socket clients cannot create or close the VM */
	if (!m) {
		send_line(cl, rpc_msg_error(has_id, id, RPC_METHOD_NOT_FOUND, "Method not found"));
		return;
	}
	if (m->needs_id && !has_id) {
		char msgtxt[64];
		snprintf(msgtxt, sizeof(msgtxt), "%s requires request id", m->name);
		send_line(cl, rpc_msg_error(false, 0, RPC_INVALID_REQUEST, msgtxt));
		return;
	}
	struct rpc_req *r = calloc(1, sizeof(*r));
	if (!r) {
		send_line(cl, rpc_msg_error(has_id, id, RPC_INTERNAL, "out of memory"));
		return;
	}
	*r = (struct rpc_req){ .cl = cl, .has_id = has_id, .id = id, .params = json_incref(params),
			       .started_ms = ml_now_ms() };
	snprintf(r->method, sizeof(r->method), "%s", name);
	if (json_is_null(r->params)) {
		json_decref(r->params);
		r->params = NULL;
	}
	r->next = cl->inflight;
	if (cl->inflight)
		cl->inflight->prev = r;
	cl->inflight = r;
	cl->n_inflight++;
	if (m->cls == M_BARRIER) {
		/* nothing more is read until every request before it is answered and it has run */
		rpc_conn_pause(cl->conn, true);
		cl->barrier = r;
		if (cl->n_inflight == 1)
			run_barrier(cl);
		return;
	}
	m->fn(r);
}

static void on_line(void *arg, struct rpc_conn *c, char *line, size_t len)
{
	(void)c;
	struct rpc_client *cl = arg;
	json_error_t je;
	json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!msg || !json_is_object(msg))
		send_line(cl, rpc_msg_error(false, 0, RPC_PARSE_ERROR, "Parse error"));
	else
		dispatch(cl, msg);
	json_decref(msg);
}

static void on_overlong(void *arg, struct rpc_conn *c, bool has_id, uint64_t id)
{
	(void)c;
	struct rpc_client *cl = arg;
	char msg[128];
	snprintf(msg, sizeof(msg), "request line exceeds %u bytes", RPC_MAX_LINE);
	send_line(cl, rpc_msg_error(has_id, id, has_id ? RPC_INVALID_REQUEST : RPC_PARSE_ERROR,
				    has_id ? msg : "Parse error"));
}

static void on_closed(void *arg, struct rpc_conn *c);

static const struct rpc_conn_ops conn_ops = { .line = on_line, .overlong = on_overlong, .closed = on_closed };

/* ---- clients ---- */
static void maybe_done(struct rpc_server *s);

static void client_maybe_free(struct rpc_client *cl)
{
	if (!cl->gone || cl->n_inflight > 0 || cl->holds > 0)
		return;
	struct rpc_server *s = cl->srv;
	for (struct rpc_client **p = &s->clients; *p; p = &(*p)->next)
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	bool primary = cl->primary;
	bool had_fwd = cl->n_fwd > 0;
	rpc_conn_free(cl->conn);
	free(cl->fwd);
	free(cl);
	struct ml_err e;
	if (had_fwd && s->vm.sb && s->vm.ready)
		rpc_forwards_apply(s, &e); /* the forwards of a client that left go with it */
	if (primary)
		maybe_done_later(s);
}

static void after_close(void *arg)
{
	struct rpc_server *s = arg;
	s->closed = true;
	maybe_done_later(s);
}

/* The peer left (EOF, or it stopped taking output): cancel what it started; the primary's
 * end also closes the VM (the SDK is gone, nobody else would). */
static void on_closed(void *arg, struct rpc_conn *c)
{
	(void)c;
	struct rpc_client *cl = arg;
	cl->gone = true;
	if (cl->barrier) {
		struct rpc_req *b = cl->barrier;
		cl->barrier = NULL;
		b->has_id = false;
		req_done(b);
	}
	/* answering a cancelled request frees it (and may free the client): walk safely */
	cl->holds++;
	for (struct rpc_req *r = cl->inflight, *next; r; r = next) {
		next = r->next;
		cancel_req(r);
	}
	cl->holds--;
	bool primary = cl->primary;
	struct rpc_server *s = cl->srv;
	client_maybe_free(cl);
	if (primary && s->vm.owned && !s->closed)
		rpc_vm_close(s, 0, after_close, s);
	else if (primary)
		maybe_done_later(s);
}

static void maybe_done(struct rpc_server *s)
{
	for (struct rpc_client *cl = s->clients; cl && !s->closed; cl = cl->next)
		if (cl->primary)
			return;
	if (s->vm.owned && s->vm.sb)
		return; /* still closing */
	if (s->o.done && !s->done_called) {
		s->done_called = true;
		s->o.done(s->o.arg);
	}
}

int rpc_server_add_conn(struct rpc_server *s, int in_fd, int out_fd, bool primary, struct ml_err *e)
{
	struct rpc_client *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return ml_err_set(e, -ENOMEM, "out of memory");
	cl->srv = s;
	cl->primary = primary;
	int r = rpc_conn_new(s->o.loop, in_fd, out_fd, RPC_MAX_LINE, &conn_ops, cl, &cl->conn, e);
	if (r < 0) {
		free(cl);
		return r;
	}
	cl->next = s->clients;
	s->clients = cl;
	return 0;
}

int rpc_server_new(const struct rpc_server_opts *o, struct rpc_server **out, struct ml_err *e)
{
	struct rpc_server *s = calloc(1, sizeof(*s));
	if (!s)
		return ml_err_set(e, -ENOMEM, "out of memory");
	s->o = *o;
	s->vm.events_watch = s->vm.file_events_watch = -1;
	s->listen_fd = -1;
	s->offload_pipe[0] = s->offload_pipe[1] = -1;
	*out = s;
	return 0;
}

void rpc_server_shutdown(struct rpc_server *s)
{
	rpc_server_unlisten(s);
	for (struct rpc_client *cl = s->clients; cl; cl = cl->next)
		if (!cl->gone)
			rpc_conn_shutdown(cl->conn);
}

void rpc_server_cancel_all(struct rpc_server *s)
{
	for (struct rpc_client *cl = s->clients, *cnext; cl; cl = cnext) {
		cl->holds++;
		for (struct rpc_req *r = cl->inflight, *next; r; r = next) {
			next = r->next;
			if (r != cl->barrier_running && r != cl->barrier)
				cancel_req(r);
		}
		cl->holds--;
		cnext = cl->next;
		client_maybe_free(cl);
	}
}

void rpc_server_free(struct rpc_server *s)
{
	if (!s)
		return;
	if (s->defer_timer)
		ml_loop_cancel(s->o.loop, s->defer_timer);
	rpc_server_unlisten(s);
	rpc_offload_close(s);
	while (s->clients) {
		struct rpc_client *cl = s->clients;
		s->clients = cl->next;
		while (cl->inflight) {
			struct rpc_req *r = cl->inflight;
			cl->inflight = r->next;
			json_decref(r->params);
			free(r);
		}
		rpc_conn_free(cl->conn);
		free(cl->fwd);
		free(cl);
	}
	free(s->base_fwd);
	free(s);
}
