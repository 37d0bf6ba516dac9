/* cli/run.c - `matchlock run`: flags, validation in the reference's order, command composition
 * (Docker semantics), then one sandbox and one exec wired to this terminal. */
#include <arpa/inet.h>
#include <jansson.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/loop.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/execio.h"
#include "cli/specs.h"
#include "mitm/mitm.h"
#include "rpc/sandbox.h"
#include "rpc/server.h"

struct run_net {
	struct sandbox_publish *pub;
	size_t n_pub;
	struct specs_secret *sec;        /* --secret, parsed */
	struct mitm_secret *msec;        /* the same for the sandbox, with placeholders */
	char (*ph)[MITM_PLACEHOLDER_LEN + 1];
	size_t n_sec;
	struct disk_spec *disks;
	size_t n_disks;
};


struct run_flags {
	char *image, *workspace, *hostname, *workdir, *user, *entrypoint;
	struct strv volume, disk, env, env_file, secret, allow_host, add_host, dns, publish, address;
	long mtu, memory, timeout, disk_size, graceful_ms;
	double cpus;
	bool no_network, intercept, detach, tty, interactive, pull, rm, privileged;
	bool timeout_set;
	long exec_timeout_s;  /* what --timeout leaves for the command once the sandbox is up */
	struct vfs_config vfs; /* --workspace and -v; no mounts: no workspace */
};

static struct flag *run_flag_table(struct run_flags *f)
{
	static struct flag t[40];
	struct flag tmp[] = {
		{ "image", 0, FLAG_STRING, &f->image, "Image reference (registry ref or local tag)", NULL, false, false },
		{ "workspace", 0, FLAG_STRING, &f->workspace, "Guest mount point of the VFS tree", NULL, false, false },
		{ "volume", 'v', FLAG_STRING_LIST, &f->volume, "host:guest[:ro|overlay|host_fs] mount (requires --workspace)", NULL, false, false },
		{ "disk", 0, FLAG_STRING_LIST, &f->disk, "host_path:guest_mount[:ro] or @volume:guest_mount[:ro] ext4 disk", NULL, false, false },
		{ "env", 'e', FLAG_STRING_ARRAY, &f->env, "Environment variable KEY=VALUE or KEY (from the host)", NULL, false, false },
		{ "env-file", 0, FLAG_STRING_ARRAY, &f->env_file, "File of KEY=VALUE or KEY lines", NULL, false, false },
		{ "secret", 0, FLAG_STRING_LIST, &f->secret, "Secret NAME=VALUE@host1,host2 or NAME@host1,... (value from $NAME)", NULL, false, false },
		{ "allow-host", 0, FLAG_STRING_LIST, &f->allow_host, "Allowed hosts (globs; host:port limits a port)", NULL, false, false },
		{ "add-host", 0, FLAG_STRING_LIST, &f->add_host, "host:ip entry for the guest's /etc/hosts", NULL, false, false },
		{ "dns-servers", 0, FLAG_STRING_LIST, &f->dns, "Guest DNS servers", "[8.8.8.8,8.8.4.4]", false, false },
		{ "hostname", 0, FLAG_STRING, &f->hostname, "Guest hostname (default: the VM id)", NULL, false, false },
		{ "mtu", 0, FLAG_INT, &f->mtu, "Guest NIC MTU", "1500", false, false },
		{ "no-network", 0, FLAG_BOOL, &f->no_network, "No guest NIC and no egress", NULL, false, false },
		{ "network-intercept", 0, FLAG_BOOL, &f->intercept, "Force the interception proxy", NULL, false, false },
		{ "publish", 'p', FLAG_STRING_ARRAY, &f->publish, "[LOCAL:]REMOTE host->guest TCP forward", NULL, false, false },
		{ "address", 0, FLAG_STRING_LIST, &f->address, "Bind addresses for --publish", "[127.0.0.1]", false, false },
		{ "cpus", 0, FLAG_FLOAT, &f->cpus, "vCPUs (fractional: rounded up, plus a CPU quota)", "1", false, false },
		{ "memory", 0, FLAG_INT, &f->memory, "Guest memory in MB", "512", false, false },
		{ "timeout", 0, FLAG_INT, &f->timeout, "Deadline for the whole run in seconds (only when given)", "300", false, false },
		{ "disk-size", 0, FLAG_INT, &f->disk_size, "Writable disk size in MB", "5120", false, false },
		{ "detach", 'd', FLAG_BOOL, &f->detach, "Run in the background and print the VM id", NULL, false, false },
		{ "tty", 't', FLAG_BOOL, &f->tty, "Allocate a pseudo-TTY (with -i)", NULL, false, false },
		{ "interactive", 'i', FLAG_BOOL, &f->interactive, "Attach stdin", NULL, false, false },
		{ "pull", 0, FLAG_BOOL, &f->pull, "Always pull the image from its registry", NULL, false, false },
		{ "rm", 0, FLAG_BOOL, &f->rm, "Remove the sandbox after the command exits", "true", false, false },
		{ "privileged", 0, FLAG_BOOL, &f->privileged, "No in-guest seccomp, capability drop or no_new_privs", NULL, false, false },
		{ "workdir", 'w', FLAG_STRING, &f->workdir, "Working directory in the guest", NULL, false, false },
		{ "user", 'u', FLAG_STRING, &f->user, "uid, uid:gid or user name (overrides the image's USER)", NULL, false, false },
		{ "entrypoint", 0, FLAG_STRING, &f->entrypoint, "Override the image ENTRYPOINT (empty clears it)", NULL, false, false },
		{ "graceful-shutdown", 0, FLAG_DURATION, &f->graceful_ms, "Grace period for VM stop at cleanup", "0s", false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	memcpy(t, tmp, sizeof(tmp));
	return t;
}

static void run_help(struct flag *t)
{
	printf("Create a sandbox from an image, run a command in it, and (by default) remove it.\n\n"
	       "Usage:\n  matchlock run [flags] [--] [command...]\n\nFlags:\n");
	args_print_flags(t);
}

static int validate_numbers(const struct run_flags *f, const struct flag *t, struct ml_err *e)
{
	long host = sysconf(_SC_NPROCESSORS_ONLN);
	if (f->mtu <= 0)
		return ml_err_set(e, -EINVAL, "--mtu must be > 0");
	/* the frame layer's range (slirpnet): below 576 a DNS answer may not fit one datagram */
	if (!f->no_network && (f->mtu < 576 || f->mtu > 65521))
		return ml_err_set(e, -EINVAL, "--mtu must be between 576 and 65521, got %ld", f->mtu);
	if (!isfinite(f->cpus) || f->cpus <= 0)
		return ml_err_set(e, -EINVAL, "--cpus must be a finite number > 0");
	if (ceil(f->cpus) > (double)host)
		return ml_err_set(e, -EINVAL, "--cpus must be <= host cpus (%ld)", host);
	/* The guest kernel and agent need about 100 MB before anything runs. */
	if (f->memory < 128)
		return ml_err_set(e, -EINVAL, "--memory must be >= 128 (MB), got %ld", f->memory);
	if (f->disk_size < 64)
		return ml_err_set(e, -EINVAL, "--disk-size must be >= 64 (MB), got %ld", f->disk_size);
	if (args_find(t, "timeout")->set && f->timeout <= 0)
		return ml_err_set(e, -EINVAL, "--timeout must be > 0");
	return 0;
}

/* QEMU's own user networking (a benchmark baseline) has none of our policy nor our forwards:
 * an option that needs them must not be silently ignored. */
static int validate_backend(const struct run_flags *f, struct ml_err *e)
{
	const char *opt = f->allow_host.n ? "--allow-host" : f->secret.n ? "--secret" :
			  f->intercept ? "--network-intercept" : f->publish.n ? "--publish" : NULL;

	if (!f->no_network && opt && cli_settings()->qemu_user_net)
		return ml_err_set(e, -EINVAL, "MATCHLOCK_NET_BACKEND=qemu-user cannot be combined with %s: "
				  "QEMU's own user networking has no egress policy and no port forwards", opt);
	return 0;
}

static int validate(const struct run_flags *f, const struct flag *t, struct ml_err *e)
{
	if (f->detach && (f->tty || f->interactive))
		return ml_err_set(e, -EINVAL, "--detach cannot be combined with -t/--tty or -i/--interactive");
	int r = validate_numbers(f, t, e);
	if (r < 0)
		return r;
	if (f->no_network) {
		if (f->allow_host.n)
			return ml_err_set(e, -EINVAL, "--no-network cannot be combined with --allow-host");
		if (f->secret.n)
			return ml_err_set(e, -EINVAL, "--no-network cannot be combined with --secret");
		if (f->intercept)
			return ml_err_set(e, -EINVAL, "--no-network cannot be combined with --network-intercept");
	}
	for (const struct flag *x = t; x->name; x++)
		if (x->later && x->set)
			return ml_err_set(e, -ENOTSUP, "--%s is not supported yet", x->name);
	for (size_t i = 0; i < f->allow_host.n; i++)
		if ((r = mitm_allow_host_check(f->allow_host.v[i], e)) < 0)
			return r;
	return validate_backend(f, e);
}

/* --address: an IPv4 literal or "localhost". libslirp's host forwards listen on IPv4 only, so
 * an IPv6 literal is refused with a line that says so rather than silently not bound. */
static int parse_bind_address(const char *a, struct in_addr *out, struct ml_err *e)
{
	struct in6_addr v6;
	if (!strcmp(a, "localhost"))
		a = "127.0.0.1";
	if (inet_pton(AF_INET, a, out) == 1)
		return 0;
	if (inet_pton(AF_INET6, a, &v6) == 1)
		return ml_err_set(e, -EINVAL, "invalid port-forward bind address: IPv6 bind address \"%s\" "
				  "is not supported (use an IPv4 literal or localhost)", a);
	return ml_err_set(e, -EINVAL, "invalid port-forward bind address: invalid bind address \"%s\" "
			  "(use an IP literal or localhost)", a);
}

/* --secret specs: each gets a fresh placeholder (what the guest's environment will hold). */
static int parse_secrets(const struct run_flags *f, struct run_net *n, struct ml_err *e)
{
	n->sec = calloc(f->secret.n + 1, sizeof(*n->sec));
	n->msec = calloc(f->secret.n + 1, sizeof(*n->msec));
	n->ph = calloc(f->secret.n + 1, sizeof(*n->ph));
	if (!n->sec || !n->msec || !n->ph)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < f->secret.n; i++) {
		int r = specs_secret(f->secret.v[i], &n->sec[i], e);

		n->n_sec = i + 1;
		if (r < 0)
			return r;
		if ((r = mitm_placeholder_new(n->ph[i])) < 0)
			return ml_err_set(e, r, "making a secret placeholder: %s", strerror(-r));
		n->msec[i] = (struct mitm_secret){ .name = n->sec[i].name, .value = n->sec[i].value,
						   .placeholder = n->ph[i], .hosts = n->sec[i].hosts.v,
						   .n_hosts = n->sec[i].hosts.n };
	}
	return 0;
}

static void free_secrets(struct run_net *n)
{
	for (size_t i = 0; i < n->n_sec; i++)
		specs_secret_free(&n->sec[i]);
	free(n->sec);
	free(n->msec);
	free(n->ph);
}

/* Every -p on every --address (default 127.0.0.1), checked before anything is created. */
static int parse_network(const struct run_flags *f, struct run_net *n, struct ml_err *e)
{
	static char *const loopback[] = { "127.0.0.1" };
	char *const *addrs = f->address.n ? f->address.v : loopback;
	size_t n_addrs = f->address.n ? f->address.n : 1;
	for (size_t i = 0; i < f->dns.n; i++) {
		int r = specs_dns_server(f->dns.v[i], e);
		if (r < 0)
			return r;
	}
	if (f->no_network && f->publish.n)
		return ml_err_set(e, -EINVAL, "--no-network cannot be combined with --publish");
	n->pub = calloc(f->publish.n * n_addrs + 1, sizeof(*n->pub));
	if (!n->pub)
		return -ENOMEM;
	for (size_t i = 0; i < f->publish.n; i++) {
		int local, remote;
		int r = specs_publish(f->publish.v[i], &local, &remote, e);
		for (size_t j = 0; r == 0 && j < n_addrs; j++) {
			struct sandbox_publish *p = &n->pub[n->n_pub++];
			r = parse_bind_address(addrs[j], &p->addr, e);
			p->host_port = local;
			p->guest_port = remote;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static void print_forwards(const struct run_net *n)
{
	for (size_t i = 0; i < n->n_pub; i++) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &n->pub[i].addr, a, sizeof(a));
		fprintf(stderr, "Forwarding %s:%d -> sandbox:%d\n", a, n->pub[i].host_port, n->pub[i].guest_port);
	}
}

/* Docker semantics: ENTRYPOINT always first; user args replace CMD. */
static void compose_argv(const struct run_flags *f, const struct oci_config *c, const struct strv *args,
			 struct strv *out)
{
	if (f->entrypoint) {
		if (*f->entrypoint)
			strv_add(out, f->entrypoint);
	} else {
		for (char **p = c->entrypoint; p && *p; p++)
			strv_add(out, *p);
	}
	if (args->n) {
		for (size_t i = 0; i < args->n; i++)
			strv_add(out, args->v[i]);
	} else if (!f->entrypoint || !*f->entrypoint) {
		/* Docker drops the image CMD when --entrypoint is given. */
		for (char **p = c->cmd; p && *p && !f->entrypoint; p++)
			strv_add(out, *p);
	}
}

/* ---- waiting for the sandbox: its events, and Ctrl-C / --timeout while it comes up ---- */
struct run_wait {
	struct ml_loop *loop;
	bool ready, failed, timed_out;
	int sig;
	struct ml_err err;
};

/* Pull lines only on a terminal: in a script, a run whose image turns out bad prints exactly
 * one line, the error. The rootfs line is the reference's, always on stderr. */
static void ev_progress(void *arg, struct sandbox *sb, enum sandbox_step step, const char *line)
{
	(void)arg;
	(void)sb;
	if (!line)
		return;
	if (step == SANDBOX_STEP_ROOTFS_BUILT || isatty(STDERR_FILENO))
		fprintf(stderr, "%s\n", line);
}

static void ev_ready(void *arg, struct sandbox *sb)
{
	(void)sb;
	struct run_wait *w = arg;
	w->ready = true;
	ml_loop_stop(w->loop);
}

static void ev_failed(void *arg, struct sandbox *sb, const struct ml_err *e)
{
	(void)sb;
	struct run_wait *w = arg;
	w->failed = true;
	w->err = *e;
	ml_loop_stop(w->loop);
}

static void ev_dead(void *arg, struct sandbox *sb, const char *msg)
{
	(void)arg;
	(void)sb;
	execio_vm_died(msg);
}

static const struct sandbox_events run_events = {
	.progress = ev_progress, .ready = ev_ready, .failed = ev_failed, .dead = ev_dead,
};

static void on_wait_signal(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)fd;
	(void)rev;
	struct run_wait *w = arg;
	int sig;
	while ((sig = execio_read_signal()) > 0)
		if (sig != SIGWINCH && !w->sig)
			w->sig = sig;
	if (w->sig)
		ml_loop_stop(w->loop);
}

static void on_run_deadline(struct ml_loop *l, void *arg)
{
	struct run_wait *w = arg;
	w->timed_out = true;
	ml_loop_stop(l);
}

/* Runs the loop until the sandbox is ready or failed; a signal or the deadline cancels the
 * creation (and is reported as such). */
static int wait_ready(struct run_wait *w, struct sandbox *sb, long timeout_s, struct ml_err *e)
{
	int timer = timeout_s > 0 ? ml_loop_timer(w->loop, timeout_s * 1000, on_run_deadline, w) : 0;
	ml_loop_watch(w->loop, execio_signal_fd(), POLLIN, on_wait_signal, w);
	while (!w->ready && !w->failed) {
		ml_loop_run(w->loop);
		if ((w->sig || w->timed_out) && !w->failed)
			sandbox_cancel(sb);
		if (w->failed || (w->sig || w->timed_out))
			break;
	}
	ml_loop_unwatch(w->loop, execio_signal_fd());
	if (timer && !w->timed_out)
		ml_loop_cancel(w->loop, timer);
	if (w->timed_out)
		return ml_err_set(e, -ETIMEDOUT, "creating sandbox: timed out after %ld s", timeout_s);
	if (w->sig)
		return ml_err_set(e, -EINTR, "creating sandbox: interrupted");
	if (w->failed) {
		*e = w->err;
		return e->code ? e->code : -EIO;
	}
	return 0;
}

static int exec_and_wait(struct run_flags *f, struct ml_loop *loop, struct sandbox *sb,
			 struct strv *argv, struct strv *env, bool *signaled, struct ml_err *e)
{
	const struct oci_config *c = sandbox_image_config(sb);
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };
	bool it = f->tty && f->interactive;
	if (it && (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_row))
		ws = (struct winsize){ .ws_row = 24, .ws_col = 80 };
	struct proto_exec x = {
		.argv = argv->v, .env = env->v,
		/* -w, else the image's WORKDIR, else the workspace, else / */
		.cwd = f->workdir && *f->workdir ? f->workdir : c->workdir && *c->workdir ? c->workdir
			: f->vfs.n_mounts ? f->vfs.workspace : "/",
		.user = f->user && *f->user ? f->user : c->user,
		.flags = (it ? EXF_TTY : 0) | (f->interactive ? EXF_STDIN : 0) | (f->privileged ? EXF_PRIVILEGED : 0),
		.rows = ws.ws_row, .cols = ws.ws_col,
	};
	struct execio_opts o = { .tty = it, .stdin_open = f->interactive,
				 .timeout_s = f->timeout_set ? f->exec_timeout_s : 0,
				 .log = sandbox_logger(sb) };
	int code = 0;
	int end = execio_run(loop, sandbox_ctl(sb), &x, &o, &code, e);
	switch (end) {
	case EXECIO_EXITED: return code;
	case EXECIO_SIGNALED:
		*signaled = true;
		return code;
	case EXECIO_TIMEOUT:
		ml_err_set(e, -ETIMEDOUT, "executing command: timed out after %ld s (the sandbox was killed)", f->timeout);
		return -1;
	case EXECIO_FAILED: {
		/* Exit codes a shell would give, so scripts that test for them keep working. */
		int st = strstr(e->msg, "No such file or directory") && !strstr(e->msg, "working directory") ? 127
			: strstr(e->msg, "Permission denied") ? 126 : 1;
		ml_err_wrap(e, "executing command");
		fprintf(stderr, "%s\n", e->msg);
		return st;
	}
	default:
		ml_err_wrap(e, "executing command");
		return -1;
	}
}

/* What `get`/`inspect` show as the VM's config: the run's options in the create-options form
 * of the JSON-RPC protocol (secrets never included). malloc'd JSON text. */
static char *record_json(const struct run_flags *f, const struct strv *env, const struct strv *hosts)
{
	json_t *envo = json_object(), *net = json_object();
	for (size_t i = 0; i < env->n; i++) {
		const char *eq = strchr(env->v[i], '=');
		if (eq) {
			_cleanup_free_ char *k = strndup(env->v[i], (size_t)(eq - env->v[i]));
			json_object_set_new(envo, k, json_string(eq + 1));
		}
	}
	json_t *allow = json_array(), *dns = json_array(), *ah = json_array();
	for (size_t i = 0; i < f->allow_host.n; i++)
		json_array_append_new(allow, json_string(f->allow_host.v[i]));
	for (size_t i = 0; i < f->dns.n; i++)
		json_array_append_new(dns, json_string(f->dns.v[i]));
	for (size_t i = 0; i < hosts->n; i++) {
		char ip[64], host[256];
		if (sscanf(hosts->v[i], "%63s %255s", ip, host) == 2)
			json_array_append_new(ah, json_pack("{s:s, s:s}", "host", host, "ip", ip));
	}
	json_object_set_new(net, "no_network", json_boolean(f->no_network));
	json_object_set_new(net, "allowed_hosts", allow);
	json_object_set_new(net, "block_private_ips", json_true());
	json_object_set_new(net, "add_hosts", ah);
	json_object_set_new(net, "dns_servers", dns);
	json_object_set_new(net, "mtu", json_integer(f->mtu));
	if (f->hostname && *f->hostname)
		json_object_set_new(net, "hostname", json_string(f->hostname));
	json_t *o = json_pack("{s:s, s:b, s:{s:f, s:i, s:i, s:i}, s:o, s:o}", "image", f->image, "privileged",
			      f->privileged, "resources", "cpus", f->cpus, "memory_mb", (json_int_t)f->memory,
			      "disk_size_mb", (json_int_t)f->disk_size, "timeout_seconds", (json_int_t)f->timeout,
			      "network", net, "env", envo);
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	return s;
}

/* The VM's control socket: `matchlock exec/port-forward/allow-list` from other shells. Their
 * execs run like this run's own command (same env, workdir and user). A failure here costs
 * only that reach, not the run. */
static struct rpc_server *serve_vm(const struct run_flags *f, struct ml_loop *loop, struct sandbox *sb,
				   const struct strv *env, const struct run_net *net)
{
	const struct oci_config *c = sandbox_image_config(sb);
	struct rpc_exec_defaults d = {
		.env = env->v, .privileged = f->privileged,
		.cwd = f->workdir && *f->workdir ? f->workdir : c->workdir && *c->workdir ? c->workdir : "/",
		.user = f->user && *f->user ? f->user : c->user,
	};
	struct rpc_server_opts o = { .settings = cli_settings(), .loop = loop };
	struct rpc_server *srv = NULL;
	struct ml_err e = { 0 };
	if (rpc_server_new(&o, &srv, &e) == 0 && rpc_server_attach(srv, sb, &d, &e) == 0 &&
	    rpc_server_set_base_forwards(srv, net->pub, net->n_pub, &e) == 0 &&
	    rpc_server_listen(srv, sandbox_state_dir(sb), &e) == 0)
		return srv;
	ml_warn("%s (matchlock exec cannot reach this VM)", e.msg);
	rpc_server_free(srv);
	return NULL;
}

static int run_sandbox(struct run_flags *f, struct strv *args, struct strv *env, struct strv *hosts,
		       const struct run_net *net, struct ml_err *e)
{
	static const char *default_dns[] = { "8.8.8.8", "8.8.4.4", NULL };
	struct ml_loop *loop = NULL;
	if (ml_loop_new(&loop) < 0 || execio_signals_init(e) < 0)
		return ml_err_set(e, -ENOMEM, "event loop setup failed");
	struct sandbox_config sc = {
		.settings = cli_settings(),
		.image = f->image, .pull = f->pull, .cpus = f->cpus, .mem_mb = (unsigned)f->memory,
		.disk_mb = (uint64_t)f->disk_size, .hostname = f->hostname,
		.dns = f->dns.n ? f->dns.v : (char **)default_dns, .hosts = hosts->v,
		.network = !f->no_network, .mtu = (unsigned)f->mtu,
		.allow_hosts = f->allow_host.n ? f->allow_host.v : NULL,
		/* the reference's default for a sandbox whose network config is not given */
		.block_private_ips = true,
		.publish = net->pub, .n_publish = net->n_pub,
		.intercept = f->intercept, .secrets = net->msec, .n_secrets = net->n_sec,
		.disks = net->disks, .n_disks = net->n_disks,
		.vfs = f->vfs.n_mounts ? &f->vfs : NULL,
	};
	_cleanup_free_ char *rec = record_json(f, env, hosts);
	sc.record_json = rec;
	struct run_wait w = { .loop = loop };
	struct sandbox *sb = NULL;
	int64_t t0 = ml_now_ms();
	int r = sandbox_start(&sc, loop, &run_events, &w, &sb, e);
	if (r == 0)
		r = wait_ready(&w, sb, f->timeout_set ? f->timeout : 0, e);
	if (r < 0) {
		/* --rm=false keeps even a VM that never came up: its record and log say why */
		sandbox_destroy(sb, f->rm);
		ml_loop_free(loop);
		return r;
	}
	if (f->timeout_set) {
		long left = f->timeout - (long)((ml_now_ms() - t0) / 1000);
		f->exec_timeout_s = left > 0 ? left : 1;
	}
	/* from here on, this thread's diagnostics belong in the sandbox's log */
	ml_logger_bind_thread(sandbox_logger(sb));
	const struct oci_config *c = sandbox_image_config(sb);
	struct strv argv = { 0 }, fullenv = { 0 };
	compose_argv(f, c, args, &argv);
	specs_env_merge(&fullenv, c->env);
	specs_env_merge(&fullenv, env->v);
	specs_env_merge(&fullenv, sandbox_guest_env(sb));   /* CA variables, secret placeholders */
	if (f->tty && f->interactive && !getenv("MATCHLOCK_NO_TERM")) {
		char *const term[] = { "TERM=xterm", NULL };
		bool has = false;
		for (size_t i = 0; i < fullenv.n; i++)
			has |= !strncmp(fullenv.v[i], "TERM=", 5);
		if (!has)
			specs_env_merge(&fullenv, term);
	}
	/* from here on other processes reach this VM through its control socket */
	struct rpc_server *srv = serve_vm(f, loop, sb, &fullenv, net);
	if (!f->rm)
		fprintf(stderr, "Sandbox %s is running\n  Connect: matchlock exec %s -it bash\n  Stop:    matchlock kill %s\n",
			sandbox_id(sb), sandbox_id(sb), sandbox_id(sb));
	print_forwards(net);
	int status = 0;
	bool signaled = false;
	if (argv.n == 0 && f->rm && !(f->tty && f->interactive))
		status = ml_err_set(e, -EINVAL, "command required (or use --rm=false to start without a command)");
	else if (argv.n > 0)
		status = exec_and_wait(f, loop, sb, &argv, &fullenv, &signaled, e);
	/* With --rm=false the VM outlives its command until SIGINT/SIGTERM; one that arrives
	 * while the command still runs is that signal (not a reason to wait for another). */
	if (status >= 0 && !f->rm && signaled)
		status = 0;
	else if (status >= 0 && !f->rm) {
		execio_wait_signal(loop);
		status = 0;
	}
	if (srv)
		rpc_server_detach(srv);
	rpc_server_free(srv);
	sandbox_destroy(sb, f->rm);
	ml_loop_free(loop);
	strv_clear(&argv);
	strv_clear(&fullenv);
	return status;
}

int cmd_run(int argc, char **argv, struct ml_err *e)
{
	struct run_flags f = { .mtu = 1500, .memory = 512, .timeout = 300, .disk_size = 5120, .cpus = 1, .rm = true };
	struct flag *t = run_flag_table(&f);
	struct strv args = { 0 }, env = { 0 }, hosts = { 0 };
	int dd;
	bool help;
	int r = args_parse(t, argc, argv, &args, &dd, &help, e);
	if (r < 0)
		return r;
	if (help)
		return run_help(t), 0;
	if (!f.image && getenv("MATCHLOCK_RUN_IMAGE") && *getenv("MATCHLOCK_RUN_IMAGE"))
		f.image = strdup(getenv("MATCHLOCK_RUN_IMAGE"));
	if (!f.image || !*f.image)
		return ml_err_set(e, -EINVAL, "required flag(s) \"image\" not set");
	if ((r = validate(&f, t, e)) < 0)
		return r;
	if (f.tty && f.interactive && !isatty(STDIN_FILENO))
		return ml_err_set(e, -EINVAL, "Error: -it requires a TTY");
	struct run_net net = { 0 };
	if ((r = specs_volumes(f.workspace, &f.volume, f.user, &f.vfs, e)) < 0)
		return r;
	if ((r = parse_secrets(&f, &net, e)) < 0 || (r = specs_env(&f.env_file, &f.env, &env, e)) < 0) {
		free_secrets(&net);
		vfs_config_free(&f.vfs);
		return r;
	}
	for (size_t i = 0; i < f.add_host.n; i++) {
		char *line = NULL;
		if ((r = specs_add_host(f.add_host.v[i], &line, e)) < 0) {
			free_secrets(&net);
			vfs_config_free(&f.vfs);
			return r;
		}
		strv_add(&hosts, line);
		free(line);
	}
	f.timeout_set = args_find(t, "timeout")->set;
	if ((r = parse_network(&f, &net, e)) == 0)
		r = specs_disks(&f.disk, cli_settings()->volumes_dir, f.workspace, &net.disks, &net.n_disks, e);
	if (r == 0 && f.detach)
		r = run_detach(argc, argv, e); /* everything was checked here first: errors stay one line */
	else if (r == 0)
		r = run_sandbox(&f, &args, &env, &hosts, &net, e);
	free(net.pub);
	free_secrets(&net);
	specs_disks_free(net.disks, net.n_disks);
	vfs_config_free(&f.vfs);
	strv_clear(&args);
	strv_clear(&env);
	strv_clear(&hosts);
	return r;
}
