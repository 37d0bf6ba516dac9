/* rpc/methods.c - log, log_stream, allow_list_add/delete, port_forward, status. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/b64.h"
#include "base/cleanup.h"
#include "base/strv.h"
#include "rpc/server_internal.h"

#define LOG_POLL_MS 100
#define LOG_CHUNK (1u << 20)

static bool vm_ready(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	if (s->vm.sb && s->vm.ready)
		return true;
	rpc_reply_error(r, RPC_VM_FAILED, "VM not created");
	return false;
}

static char *log_path(struct rpc_server *s)
{
	char *p = NULL;
	return asprintf(&p, "%s/logs/vm.log", sandbox_state_dir(s->vm.sb)) < 0 ? NULL : p;
}

/* ---- log ---- */
void rpc_m_log(struct rpc_req *r)
{
	if (!vm_ready(r))
		return;
	_cleanup_free_ char *path = log_path(r->cl->srv);
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;
	if (fd < 0 && errno == ENOENT) {
		rpc_reply(r, json_pack("{s:s}", "content", ""));
		return;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		rpc_reply_error(r, RPC_FILE_FAILED, "open %s: %s", path ? path : "vm.log", strerror(errno));
		return;
	}
	size_t cap = (size_t)st.st_size, n = 0;
	_cleanup_free_ uint8_t *buf = malloc(cap + 1);
	while (buf && n < cap) {
		ssize_t g = read(fd, buf + n, cap - n);
		if (g <= 0)
			break;
		n += (size_t)g;
	}
	_cleanup_free_ char *b64 = buf ? ml_b64_encode(buf, n) : NULL;
	if (!b64) {
		rpc_reply_error(r, RPC_FILE_FAILED, "reading the log: out of memory");
		return;
	}
	rpc_reply(r, json_pack("{s:s}", "content", b64));
}

/* ---- log_stream: the file, then what is appended (from 0 again if it shrinks) ---- */
struct log_stream {
	struct rpc_req *req;
	struct rpc_server *srv;
	char *path;
	off_t off;
	int timer;
};

static void log_stream_free(struct log_stream *ls)
{
	if (ls->timer)
		ml_loop_cancel(ls->srv->o.loop, ls->timer);
	free(ls->path);
	free(ls);
}

static void log_tick(struct ml_loop *l, void *arg);

static void log_emit(struct log_stream *ls)
{
	struct stat st;
	_cleanup_close_ int fd = open(ls->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	if (st.st_size < ls->off)
		ls->off = 0; /* truncated: start over */
	/* a client that does not read its notifications is not sent more */
	if (st.st_size == ls->off || rpc_client_congested(ls->req->cl))
		return;
	size_t want = (size_t)(st.st_size - ls->off) > LOG_CHUNK ? LOG_CHUNK : (size_t)(st.st_size - ls->off);
	_cleanup_free_ uint8_t *buf = malloc(want);
	ssize_t n = buf ? pread(fd, buf, want, ls->off) : -1;
	if (n <= 0)
		return;
	ls->off += n;
	_cleanup_free_ char *b64 = ml_b64_encode(buf, (size_t)n);
	if (b64)
		rpc_notify(ls->req, "log_stream.data", json_pack("{s:s}", "data", b64), NULL, NULL);
}

static void log_tick(struct ml_loop *l, void *arg)
{
	struct log_stream *ls = arg;
	log_emit(ls);
	ls->timer = ml_loop_timer(l, LOG_POLL_MS, log_tick, ls);
}

/* It never ends by itself: only `cancel`, the client's end or the VM's close. */
static void log_cancel(struct rpc_req *r)
{
	struct log_stream *ls = r->op;
	r->op = NULL;
	r->ops = NULL;
	log_stream_free(ls);
	rpc_reply_error(r, RPC_CANCELLED, "context canceled");
}

static const struct rpc_op_ops log_ops = { .cancel = log_cancel };

void rpc_m_log_stream(struct rpc_req *r)
{
	if (!vm_ready(r))
		return;
	struct log_stream *ls = calloc(1, sizeof(*ls));
	if (!ls || !(ls->path = log_path(r->cl->srv))) {
		free(ls);
		rpc_reply_error(r, RPC_FILE_FAILED, "out of memory");
		return;
	}
	ls->req = r;
	ls->srv = r->cl->srv;
	r->op = ls;
	r->ops = &log_ops;
	log_emit(ls);
	ls->timer = ml_loop_timer(ls->srv->o.loop, LOG_POLL_MS, log_tick, ls);
}

/* ---- allow_list_add / allow_list_delete ---- */
static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; a && v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* trimmed, blanks dropped, duplicates dropped, order kept */
static int hosts_param(json_t *params, char ***out, struct ml_err *e)
{
	json_t *h = json_object_get(params, "hosts");
	*out = NULL;
	if (h && !json_is_null(h) && !json_is_array(h))
		return ml_err_set(e, -EINVAL, "json: cannot unmarshal %s into Go struct field .hosts of type []string",
				  json_is_string(h) ? "string" : "value");
	size_t i;
	json_t *it;
	json_array_foreach(h, i, it) {
		if (!json_is_string(it))
			return ml_err_set(e, -EINVAL, "json: cannot unmarshal value into Go struct field .hosts of type string");
		const char *v = json_string_value(it);
		while (*v == ' ' || *v == '\t')
			v++;
		char buf[512];
		snprintf(buf, sizeof(buf), "%s", v);
		for (size_t n = strlen(buf); n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'); n--)
			buf[n - 1] = '\0';
		if (buf[0] && !strv_contains(*out, buf) && strv_append(out, buf) < 0)
			return ml_err_set(e, -ENOMEM, "out of memory");
	}
	return strv_len(*out) ? 0 : ml_err_set(e, -EINVAL, "hosts is required");
}

void rpc_m_allow_list(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	struct ml_err e = { 0 };
	_cleanup_strv_ char **hosts = NULL;
	if (!vm_ready(r))
		return;
	if (hosts_param(r->params, &hosts, &e) < 0) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "%s", e.msg);
		return;
	}
	struct net *net = sandbox_net(s->vm.sb);
	if (!s->vm.intercept || !net) {
		rpc_reply_error(r, RPC_VM_FAILED, "allow-list updates unavailable: sandbox was started without network "
			       "interception");
		return;
	}
	bool add = !strcmp(r->method, "allow_list_add");
	_cleanup_strv_ char **changed = NULL, **current = NULL;
	if (net_allow_list(net, add ? NET_ALLOW_ADD : NET_ALLOW_DELETE, hosts, strv_len(hosts), &changed, &current, &e) < 0) {
		rpc_reply_error(r, e.code == -EINVAL ? RPC_INVALID_PARAMS : RPC_VM_FAILED, "%s", e.msg);
		return;
	}
	rpc_reply(r, json_pack("{s:o, s:o}", add ? "added" : "removed", strv_json(changed), "allowed_hosts",
			       strv_json(current)));
}

/* ---- port_forward: replaces the previous set ---- */
static int forwards_param(json_t *params, struct net_publish **out, size_t *n, struct ml_err *e)
{
	json_t *f = json_object_get(params, "forwards"), *a = json_object_get(params, "addresses");
	if (f && !json_is_null(f) && !json_is_array(f))
		return ml_err_set(e, -EINVAL, "json: cannot unmarshal value into Go struct field .forwards of type []api.PortForward");
	if (json_array_size(f) == 0)
		return ml_err_set(e, -EINVAL, "forwards is required");
	if (a && !json_is_null(a) && !json_is_array(a))
		return ml_err_set(e, -EINVAL, "json: cannot unmarshal value into Go struct field .addresses of type []string");
	size_t na = json_array_size(a) ? json_array_size(a) : 1;
	struct net_publish *p = calloc(json_array_size(f) * na, sizeof(*p));
	if (!p)
		return ml_err_set(e, -ENOMEM, "out of memory");
	size_t i, k = 0;
	json_t *it;
	json_array_foreach(f, i, it) {
		json_t *lp = json_object_get(it, "local_port"), *rp = json_object_get(it, "remote_port");
		json_int_t l = json_integer_value(lp), rr = json_integer_value(rp);
		if (!json_is_integer(lp) || !json_is_integer(rp) || l < 0 || l > 65535 || rr < 1 || rr > 65535) {
			free(p);
			return ml_err_set(e, -EINVAL, "invalid port forward: ports must be in range 1-65535 (local 0: any free port)");
		}
		for (size_t j = 0; j < na; j++) {
			const char *addr = json_array_size(a) ? json_string_value(json_array_get(a, j)) : "127.0.0.1";
			if (addr && !strcmp(addr, "localhost"))
				addr = "127.0.0.1";
			if (!addr || inet_pton(AF_INET, addr, &p[k].addr) != 1) {
				free(p);
				return ml_err_set(e, -EINVAL, "invalid port-forward bind address: invalid bind address \"%s\" "
						  "(use an IPv4 literal or localhost)", addr ? addr : "");
			}
			p[k].host_port = (int)l;
			p[k].guest_port = (int)rr;
			k++;
		}
	}
	*out = p;
	*n = k;
	return 0;
}

int rpc_forwards_apply(struct rpc_server *s, struct ml_err *e)
{
	struct net *net = sandbox_net(s->vm.sb);
	size_t n = s->n_base_fwd;
	for (struct rpc_client *cl = s->clients; cl; cl = cl->next)
		n += cl->gone ? 0 : cl->n_fwd;
	_cleanup_free_ struct net_publish *all = calloc(n + 1, sizeof(*all));
	_cleanup_free_ struct net_publish *bound = calloc(n + 1, sizeof(*bound));
	if (!all || !bound)
		return ml_err_set(e, -ENOMEM, "out of memory");
	size_t k = 0;
	memcpy(all, s->base_fwd, s->n_base_fwd * sizeof(*all));
	k = s->n_base_fwd;
	for (struct rpc_client *cl = s->clients; cl; cl = cl->next)
		if (!cl->gone) {
			memcpy(all + k, cl->fwd, cl->n_fwd * sizeof(*all));
			k += cl->n_fwd;
		}
	int r = net_forwards_set(net, all, n, bound, e);
	if (r < 0)
		return r;
	/* what was asked as port 0 is now a real port: keep it, so a rebuild rebinds the same */
	k = s->n_base_fwd;
	for (struct rpc_client *cl = s->clients; cl; cl = cl->next)
		for (size_t i = 0; !cl->gone && i < cl->n_fwd; i++)
			cl->fwd[i] = bound[k++];
	return 0;
}

/* port_forward replaces this client's forwards; port_forward_add (the control socket's
 * `matchlock port-forward`) adds to them. Other clients' forwards and the VM's own stay. */
void rpc_m_port_forward(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	struct rpc_client *cl = r->cl;
	struct ml_err e = { 0 };
	struct net_publish *fwd = NULL;
	size_t n = 0;
	if (!vm_ready(r))
		return;
	if (forwards_param(r->params, &fwd, &n, &e) < 0) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "%s", e.msg);
		return;
	}
	if (!sandbox_net(s->vm.sb)) {
		free(fwd);
		rpc_reply_error(r, RPC_VM_FAILED, "port forwarding needs the guest network (this sandbox has none)");
		return;
	}
	bool add = !strcmp(r->method, "port_forward_add");
	struct net_publish *old = cl->fwd;
	size_t n_old = cl->n_fwd, first = add ? n_old : 0;
	struct net_publish *mine = calloc(first + n + 1, sizeof(*mine));
	if (!mine) {
		free(fwd);
		rpc_reply_error(r, RPC_VM_FAILED, "out of memory");
		return;
	}
	if (add)
		memcpy(mine, old, n_old * sizeof(*mine));
	memcpy(mine + first, fwd, n * sizeof(*mine));
	free(fwd);
	cl->fwd = mine;
	cl->n_fwd = first + n;
	if (rpc_forwards_apply(s, &e) < 0) {
		/* nothing changes on an error: the previous set is bound again */
		free(mine);
		cl->fwd = old;
		cl->n_fwd = n_old;
		struct ml_err e2;
		rpc_forwards_apply(s, &e2);
		rpc_reply_error(r, RPC_VM_FAILED, "%s", e.msg);
		return;
	}
	free(old);
	json_t *b = json_array();
	for (size_t i = first; b && i < cl->n_fwd; i++) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &cl->fwd[i].addr, a, sizeof(a));
		json_array_append_new(b, json_pack("{s:s, s:i, s:i}", "address", a, "local_port", cl->fwd[i].host_port,
						   "remote_port", cl->fwd[i].guest_port));
	}
	rpc_reply(r, json_pack("{s:o}", "bindings", b));
}

/* ---- status: what a control-socket client needs to know about the VM ---- */
void rpc_m_status(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	if (!vm_ready(r))
		return;
	_cleanup_strv_ char **current = NULL;
	struct net *net = sandbox_net(s->vm.sb);
	struct ml_err e;
	if (net && s->vm.intercept)
		net_allow_list(net, NET_ALLOW_GET, NULL, 0, NULL, &current, &e);
	rpc_reply(r, json_pack("{s:s, s:i, s:b, s:b, s:o}", "id", sandbox_id(s->vm.sb), "pid", (int)getpid(),
			       "network", net != NULL, "intercept", s->vm.intercept, "allowed_hosts", strv_json(current)));
}
