/* rpc/create.c - `create` and `close` (the barrier methods), the VM's exec defaults, its
 * network events, and closing a VM (close, the client's end, a second create, a signal).
 *
 * create: options checked (createopts.c) -> sandbox_start -> ready -> exec defaults -> record
 * -> (launch_entrypoint: the image's ENTRYPOINT+CMD, waited for up to 500 ms) -> {"id": ...}.
 * Any failure after the checks is -32000 with the error chain, and nothing of the VM is left. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "base/strv.h"
#include "rpc/exec_internal.h"
#include "rpc/vmstate.h"

#define LAUNCH_WAIT_MS 500
#define EVENTS_BATCH 64

static void ev_dead(void *arg, struct sandbox *sb, const char *msg);
static const struct sandbox_events life_events = { .dead = ev_dead };

static void free_defaults(struct rpc_exec_defaults *d)
{
	strv_free(d->env);
	free((char *)d->cwd);
	free((char *)d->user);
	memset(d, 0, sizeof(*d));
}

/* ---- network events -> `event` notifications ---- */
static void on_net_events(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)fd;
	(void)rev;
	struct rpc_server *s = arg;
	struct net *net = s->vm.sb ? sandbox_net(s->vm.sb) : NULL;
	struct net_event ev[EVENTS_BATCH];
	size_t n = net ? net_events_read(net, ev, EVENTS_BATCH, NULL) : 0;
	for (size_t i = 0; i < n; i++) {
		char url[320], ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &ev[i].dst.sin_addr, ip, sizeof(ip));
		snprintf(url, sizeof(url), "%s://%s:%u", ev[i].dns ? "dns" : "tcp", ev[i].host[0] ? ev[i].host : ip,
			 ev[i].dns ? 53 : ntohs(ev[i].dst.sin_port));
		const struct net_event *h = ev[i].http ? &ev[i] : NULL;   /* an intercepted exchange */
		json_t *net_j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:b}",
					  "method", h ? h->method : ev[i].dns ? "DNS" : "CONNECT", "url", h ? h->url : url,
					  "host", ev[i].host[0] ? ev[i].host : ip, "status_code", h ? h->status : 0,
					  "request_bytes", (json_int_t)(h ? h->request_bytes : 0),
					  "response_bytes", (json_int_t)(h ? h->response_bytes : 0),
					  "duration_ms", (json_int_t)(h ? h->duration_ms : 0), "blocked", ev[i].blocked);
		if (net_j && ev[i].blocked && ev[i].reason[0])
			json_object_set_new(net_j, "block_reason", json_string(ev[i].reason));
		json_t *p = net_j ? json_pack("{s:s, s:I, s:o}", "type", "network", "timestamp",
					      (json_int_t)(ev[i].unix_ms / 1000), "network", net_j) : NULL;
		if (p)
			rpc_broadcast_event(s, p);
	}
}

/* ---- workspace file events -> `event` notifications (what the SDKs' VFS hooks run on) ---- */
static void on_file_events(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)fd;
	(void)rev;
	struct rpc_server *s = arg;
	struct vfs *v = s->vm.sb ? sandbox_vfs(s->vm.sb) : NULL;
	struct vfs_event ev;
	for (int i = 0; v && i < EVENTS_BATCH && vfs_event_next(v, &ev); i++) {
		json_t *f = json_pack("{s:s, s:s, s:I}", "op", vfs_op_name(ev.op), "path", ev.path, "size", (json_int_t)ev.size);
		if (f && ev.mode)
			json_object_set_new(f, "mode", json_integer(vfs_go_mode(ev.mode)));
		if (f && ev.uid)
			json_object_set_new(f, "uid", json_integer(ev.uid));
		if (f && ev.gid)
			json_object_set_new(f, "gid", json_integer(ev.gid));
		json_t *p = f ? json_pack("{s:s, s:I, s:o}", "type", "file", "timestamp", (json_int_t)ev.time_ms, "file", f) : NULL;
		if (p)
			rpc_broadcast_event(s, p);
	}
}

static void watch_events(struct rpc_server *s)
{
	struct net *net = sandbox_net(s->vm.sb);
	struct vfs *v = sandbox_vfs(s->vm.sb);
	if (net) {
		s->vm.events_watch = net_events_fd(net);
		ml_loop_watch(s->o.loop, s->vm.events_watch, POLLIN, on_net_events, s);
	}
	if (v && vfs_events_fd(v) >= 0) {
		s->vm.file_events_watch = vfs_events_fd(v);
		ml_loop_watch(s->o.loop, s->vm.file_events_watch, POLLIN, on_file_events, s);
	}
}

static void unwatch_events(struct rpc_server *s)
{
	if (s->vm.events_watch >= 0)
		ml_loop_unwatch(s->o.loop, s->vm.events_watch);
	if (s->vm.file_events_watch >= 0)
		ml_loop_unwatch(s->o.loop, s->vm.file_events_watch);
	s->vm.events_watch = s->vm.file_events_watch = -1;
}

/* ---- the VM's exec defaults (rpc.md exec semantics) ---- */
static int set_defaults(struct rpc_server *s, struct rpc_create *c)
{
	const struct oci_config *img = sandbox_image_config(s->vm.sb);
	struct rpc_exec_defaults *d = &s->vm.def;
	const char *cwd = c->image_config.working_dir && *c->image_config.working_dir ? c->image_config.working_dir
			  : img->workdir && *img->workdir ? img->workdir : c->workspace;
	const char *user = c->image_config.user && *c->image_config.user ? c->image_config.user : img->user;
	d->env = rpc_create_exec_env(c, img);
	/* with interception, the CA variables and the secrets' placeholders, last: they win */
	for (char *const *g = sandbox_guest_env(s->vm.sb); d->env && g && *g; g++)
		if (strv_env_set(&d->env, *g) < 0) {
			strv_free(d->env);
			d->env = NULL;
		}
	d->cwd = cwd ? strdup(cwd) : NULL;
	d->user = user && *user ? strdup(user) : NULL;
	d->privileged = c->privileged;
	return d->env && (!cwd || d->cwd) && (!user || !*user || d->user) ? 0 : -ENOMEM;
}

/* ---- create ---- */
struct creating {
	struct rpc_server *srv;
	struct rpc_req *req;
	struct rpc_create *c;
	int fail_code;
	char *fail_msg;
};

static void create_fail_now(struct ml_loop *l, void *arg)
{
	(void)l;
	struct creating *cr = arg;
	struct rpc_server *s = cr->srv;
	/* unless the client's end closed this VM meanwhile (then c is already freed) */
	if (s->vm.create == cr->c) {
		rpc_server_unlisten(s); /* ev_ready may have opened the VM's control socket */
		unwatch_events(s);
		if (s->vm.sb) {
			exec_ops_vm_gone(s, true);
			sandbox_destroy(s->vm.sb, true);
			s->vm.sb = NULL;
		}
		s->vm.ready = false;
		s->vm.owned = false;
		free_defaults(&s->vm.def);
		rpc_create_free(cr->c);
		s->vm.create = NULL;
	}
	rpc_reply_error(cr->req, cr->fail_code, "%s", cr->fail_msg ? cr->fail_msg : "create VM: out of memory");
	free(cr->fail_msg);
	free(cr);
}

/* Failures arrive inside the sandbox's own callbacks (an entrypoint's EXIT is reported from
 * the middle of its control channel's dispatch): the sandbox is destroyed, and the request
 * answered, on the next loop round. */
static void create_fail(struct creating *cr, int code, const char *msg)
{
	cr->fail_code = code;
	cr->fail_msg = strdup(msg);
	ml_loop_timer(cr->srv->o.loop, 0, create_fail_now, cr);
}

static void create_ok(struct creating *cr)
{
	struct rpc_server *s = cr->srv;
	sandbox_set_events(s->vm.sb, &life_events, s);
	rpc_reply(cr->req, json_pack("{s:s}", "id", sandbox_id(s->vm.sb)));
	free(cr);
}

static void on_launch(void *arg, int code, const char *err)
{
	struct creating *cr = arg;
	char msg[600];
	if (err) {
		snprintf(msg, sizeof(msg), "start image entrypoint: %s", err);
		create_fail(cr, RPC_VM_FAILED, msg);
	} else if (code > 0) {
		snprintf(msg, sizeof(msg), "start image entrypoint: exit code %d", code);
		create_fail(cr, RPC_VM_FAILED, msg);
	} else {
		create_ok(cr); /* exited 0, or still running after the wait */
	}
}

static void ev_ready(void *arg, struct sandbox *sb)
{
	struct creating *cr = arg;
	struct rpc_server *s = cr->srv;
	(void)sb;
	s->vm.ready = true;
	if (set_defaults(s, cr->c) < 0) {
		create_fail(cr, RPC_VM_FAILED, "create VM: out of memory");
		return;
	}
	watch_events(s);
	struct ml_err le = { 0 };
	if (rpc_server_listen(s, sandbox_state_dir(sb), &le) < 0)
		ml_warn("%s (matchlock exec cannot reach this VM)", le.msg);
	_cleanup_strv_ char **argv = cr->c->launch_entrypoint ? rpc_create_entrypoint(cr->c, sandbox_image_config(sb)) : NULL;
	if (strv_len(argv) == 0) {
		create_ok(cr);
		return;
	}
	/* on_launch answers, whatever happens (started, exited, or failed to start) */
	rpc_launch(s, argv, LAUNCH_WAIT_MS, on_launch, cr);
}

static void ev_failed(void *arg, struct sandbox *sb, const struct ml_err *e)
{
	(void)sb;
	struct creating *cr = arg;
	/* the reference's chain: an image problem reads "failed to build rootfs: ..." there; ours
	 * already names its step ("pull ...", "building rootfs: ...", "starting sandbox: ...") */
	create_fail(cr, e->code == -ECANCELED ? RPC_VM_FAILED : RPC_VM_FAILED, e->msg);
}

static void ev_progress(void *arg, struct sandbox *sb, enum sandbox_step step, const char *line)
{
	(void)arg;
	(void)sb;
	(void)step;
	if (line)
		fprintf(stderr, "%s\n", line); /* stderr: diagnostics only, never stdout */
}

static void ev_dead(void *arg, struct sandbox *sb, const char *msg)
{
	(void)sb;
	struct rpc_server *s = arg;
	ml_warn("the VM died: %s", msg);
	exec_ops_vm_gone(s, false); /* the sandbox (and its channel) lives until close */
}

static const struct sandbox_events create_events = {
	.progress = ev_progress, .ready = ev_ready, .failed = ev_failed, .dead = NULL,
};

static void start_create(void *arg)
{
	struct creating *cr = arg;
	struct rpc_server *s = cr->srv;
	struct ml_err e = { 0 };
	s->vm.create = cr->c;
	s->vm.owned = true;
	s->vm.intercept = cr->c->intercept;
	if (sandbox_start(&cr->c->cfg, s->o.loop, &create_events, cr, &s->vm.sb, &e) < 0) {
		s->vm.sb = NULL;
		create_fail(cr, RPC_VM_FAILED, e.msg);
	}
}

void rpc_m_create(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	struct ml_err e = { 0 };
	struct rpc_create *c = NULL;
	int rc = rpc_create_parse(r->params, s->o.settings, &c, &e);
	if (rc < 0) {
		rpc_reply_error(r, rc == -EINVAL ? RPC_INVALID_PARAMS : RPC_VM_FAILED, "%s", e.msg);
		return;
	}
	if (rpc_create_check_host(c, &e) < 0 || rpc_create_check_disks(c, &e) < 0) {
		rpc_create_free(c);
		rpc_reply_error(r, RPC_VM_FAILED, "%s", e.msg);
		return;
	}
	struct creating *cr = calloc(1, sizeof(*cr));
	if (!cr) {
		rpc_create_free(c);
		rpc_reply_error(r, RPC_VM_FAILED, "out of memory");
		return;
	}
	*cr = (struct creating){ .srv = s, .req = r, .c = c };
	/* a second create replaces the first VM; unlike upstream, the first is closed, not leaked */
	if (s->vm.sb)
		rpc_vm_close(s, 0, start_create, cr);
	else
		start_create(cr);
}

/* ---- close ---- */
struct closing {
	struct rpc_server *srv;
	void (*done)(void *arg);
	void *arg;
	int timer;
	bool finished;
};

static void close_finish(struct closing *cl)
{
	struct rpc_server *s = cl->srv;
	if (cl->finished)
		return;
	cl->finished = true;
	if (cl->timer)
		ml_loop_cancel(s->o.loop, cl->timer);
	unwatch_events(s);
	struct sandbox *sb = s->vm.sb;
	if (sb && s->vm.owned) {
		exec_ops_vm_gone(s, true);
		sandbox_destroy(sb, false); /* records it stopped, keeps its logs */
	}
	s->vm.sb = NULL;
	s->vm.ready = false;
	s->vm.owned = false;
	free_defaults(&s->vm.def);
	rpc_create_free(s->vm.create);
	s->vm.create = NULL;
	void (*done)(void *) = cl->done;
	void *arg = cl->arg;
	free(cl);
	if (done)
		done(arg);
}

static void close_timeout(struct ml_loop *l, void *arg)
{
	(void)l;
	struct closing *cl = arg;
	cl->timer = 0;
	close_finish(cl);
}

/* The engine is gone: finish on the next loop round (a sandbox is never destroyed from inside
 * its own event). */
static void close_dead(void *arg, struct sandbox *sb, const char *msg)
{
	(void)sb;
	(void)msg;
	struct closing *cl = arg;
	if (cl->timer)
		ml_loop_cancel(cl->srv->o.loop, cl->timer);
	cl->timer = ml_loop_timer(cl->srv->o.loop, 0, close_timeout, cl);
}

static const struct sandbox_events closing_events = { .dead = close_dead };

void rpc_vm_close(struct rpc_server *s, int timeout_ms, void (*done)(void *arg), void *arg)
{
	struct closing *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		if (done)
			done(arg);
		return;
	}
	*cl = (struct closing){ .srv = s, .done = done, .arg = arg };
	rpc_server_unlisten(s);
	rpc_offload_join_all(s); /* workspace file calls in flight finish against a live VM */
	rpc_launch_stop(s);
	rpc_server_cancel_all(s);
	if (s->vm.sb && s->vm.ready)
		exec_ops_vm_gone(s, false); /* close_finish drops the rest before the destroy */
	/* graceful: the agent syncs and powers off; the engine's exit ends the wait early */
	if (s->vm.sb && s->vm.ready && timeout_ms > 0 && sandbox_set_events(s->vm.sb, &closing_events, cl) == 0 &&
	    sandbox_shutdown(s->vm.sb) == 0) {
		cl->timer = ml_loop_timer(s->o.loop, timeout_ms, close_timeout, cl);
		return;
	}
	close_finish(cl);
}

static void close_answered(void *arg)
{
	struct rpc_req *r = arg;
	struct rpc_server *s = r->cl->srv;
	s->closed = true;
	rpc_reply(r, json_object());
}

void rpc_m_close(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	json_t *t = json_object_get(r->params, "timeout_seconds");
	if (t && !json_is_null(t) && !json_is_number(t)) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "json: cannot unmarshal %s into Go struct field .timeout_seconds "
			       "of type float64", json_is_string(t) ? "string" : "value");
		return;
	}
	double secs = t ? json_number_value(t) : 0;
	int ms = secs > 0 ? (int)(secs > 3600 ? 3600000 : secs * 1000) : 0;
	if (!s->vm.sb) {
		close_answered(r);
		return;
	}
	rpc_vm_close(s, ms, close_answered, r);
}

/* ---- a VM created by `run`: served on its control socket ---- */
int rpc_server_set_base_forwards(struct rpc_server *s, const struct sandbox_publish *p, size_t n, struct ml_err *e)
{
	free(s->base_fwd);
	s->base_fwd = calloc(n + 1, sizeof(*s->base_fwd));
	if (!s->base_fwd)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		s->base_fwd[i] = (struct net_publish){ p[i].addr, p[i].host_port, p[i].guest_port };
	s->n_base_fwd = n;
	return 0;
}

void rpc_server_detach(struct rpc_server *s)
{
	rpc_server_unlisten(s);
	rpc_offload_join_all(s);
	unwatch_events(s);
	rpc_server_cancel_all(s);
	if (s->vm.sb)
		exec_ops_vm_gone(s, true); /* its creator destroys it (and the channel) next */
	s->vm.sb = NULL;
	s->vm.ready = false;
	free_defaults(&s->vm.def);
}

int rpc_server_attach(struct rpc_server *s, struct sandbox *sb, const struct rpc_exec_defaults *d,
		      struct ml_err *e)
{
	bool oom = false;
	s->vm.sb = sb;
	s->vm.owned = false;
	s->vm.ready = true;
	s->vm.def.env = strv_copy(d->env, &oom);
	s->vm.def.cwd = d->cwd ? strdup(d->cwd) : NULL;
	s->vm.def.user = d->user ? strdup(d->user) : NULL;
	s->vm.def.privileged = d->privileged;
	s->vm.intercept = sandbox_intercepts(sb);
	if (oom || (d->cwd && !s->vm.def.cwd) || (d->user && !s->vm.def.user))
		return ml_err_set(e, -ENOMEM, "out of memory");
	watch_events(s);
	return 0;
}
