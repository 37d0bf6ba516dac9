/* rpc/boot.c - start the engine and drive the boot handshake on the caller's loop: the
 * engine is our child (started from the loop thread: PR_SET_PDEATHSIG follows the thread that
 * forks, so a worker thread that exits would take the VM with it), the network thread starts
 * before the guest can send a frame, then HELLO -> CONFIG -> READY. A boot that never answers
 * ends at the boot timeout with the console's tail, so a hung guest cannot hang the caller. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "rpc/sandbox_internal.h"
#include "rpc/vmstate.h"

void sb_fail(struct sandbox *sb, const struct ml_err *e)
{
	if (sb->state == SB_READY || sb->state == SB_FAILED)
		return;
	if (sb->state == SB_BOOTING && sb->state_dir)
		vmstate_phase(sb->state_dir, sb->id, "start_failed", e->msg);
	sb->state = SB_FAILED;
	if (sb->boot_timer)
		ml_loop_cancel(sb->loop, sb->boot_timer);
	sb->boot_timer = 0;
	ml_logger_printf(sb->log, ML_LOG_ERROR, "creating the sandbox failed: %s", e->msg);
	if (sb->ev->failed)
		sb->ev->failed(sb->arg, sb, e);
}

/* fmt has one %s for detail; the console's tail is appended when there is one. */
static void boot_fail(struct sandbox *sb, int code, const char *fmt, const char *detail)
{
	struct ml_err e = { 0 };
	char head[384];
	snprintf(head, sizeof(head), fmt, detail);
	const char *tail = sb->vm ? vmm_console_tail(sb->vm) : "";
	ml_err_set(&e, code, "%s%s%s", head, *tail ? "; last console output:\n" : "", tail);
	sb_fail(sb, &e);
}

/* The console says why a guest died when the kernel panicked: name that instead of the
 * channel's EOF, which is only the symptom. */
static const char *death_reason(struct sandbox *sb, const char *msg, char *buf, size_t n)
{
	if (!sb->vm)
		return msg;
	vmm_console_pump(sb->vm);
	const char *p = strstr(vmm_console_tail(sb->vm), "Kernel panic - not syncing: ");
	if (!p)
		return msg;
	p += strlen("Kernel panic - not syncing: ");
	snprintf(buf, n, "the guest kernel panicked (%.*s)", (int)strcspn(p, "\r\n"), p);
	return buf;
}

static void mark_dead(struct sandbox *sb, const char *msg)
{
	char why[256];
	msg = death_reason(sb, msg, why, sizeof(why));
	if (sb->state != SB_READY) {
		boot_fail(sb, -EIO, "%s", msg);
		return;
	}
	if (sb->dead)
		return;
	sb->dead = true;
	ml_logger_printf(sb->log, ML_LOG_WARN, "the sandbox died: %s", msg);
	if (sb->ev->dead)
		sb->ev->dead(sb->arg, sb, msg);
}

/* ---- control channel callbacks ---- */
static void on_hello(void *arg, uint32_t version, const char *info)
{
	struct sandbox *sb = arg;
	ml_logger_printf(sb->log, ML_LOG_INFO, "agent hello: version %u, %s", version, info);
	if (sb->state != SB_BOOTING || sb->configured)
		return; /* a guest that says hello twice is not configured twice */
	sb->configured = true;
	if (version != PROTO_VERSION) {
		boot_fail(sb, -EPROTO, "guest agent speaks protocol version %s", version > 0 ? "other" : "0");
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	sb->pcfg.time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (ctl_configure(sb->ctl, &sb->pcfg) < 0)
		boot_fail(sb, -EIO, "sending the guest its configuration failed%s", "");
}

static void on_ready(void *arg)
{
	struct sandbox *sb = arg;
	if (sb->state != SB_BOOTING)
		return;
	sb->state = SB_READY;
	vmstate_phase(sb->state_dir, sb->id, "running", NULL);
	ml_loop_cancel(sb->loop, sb->boot_timer);
	sb->boot_timer = 0;
	ml_logger_printf(sb->log, ML_LOG_INFO, "sandbox %s ready", sb->id);
	if (sb->ev->ready)
		sb->ev->ready(sb->arg, sb);
}

/* The agent's line names what failed and why (a disk's mount error carries the kernel's
 * reason): one line, without the console's tail. */
static void on_config_failed(void *arg, const char *msg)
{
	struct ml_err e = { 0 };
	ml_err_set(&e, -EIO, "guest setup failed: %s", msg);
	sb_fail(arg, &e);
}

static void on_agent_log(void *arg, const char *line)
{
	struct sandbox *sb = arg;
	ml_logger_guest_line(sb->log, "[agent] ", line);
}

static void on_closed(void *arg, const char *msg) { mark_dead(arg, msg); }

static void on_pong(void *arg, const uint8_t *data, size_t len)
{
	struct sandbox *sb = arg;
	if (sb->ev->pong)
		sb->ev->pong(sb->arg, data, len);
}

static const struct ctl_ops sandbox_ctl_ops = {
	.hello = on_hello,
	.ready = on_ready,
	.config_failed = on_config_failed,
	.log = on_agent_log,
	.closed = on_closed,
	.pong = on_pong,
};

/* ---- loop callbacks ---- */
static void watch_ctl(struct sandbox *sb);

static void on_ctl_io(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)fd;
	struct sandbox *sb = arg;
	int r = 0;
	if (rev & (POLLIN | POLLHUP | POLLERR))
		r = ctl_on_readable(sb->ctl);
	if (r >= 0 && (rev & POLLOUT))
		r = ctl_on_writable(sb->ctl);
	if (r < 0) {
		ml_loop_unwatch(sb->loop, vmm_ctl_fd(sb->vm));
		return;
	}
	watch_ctl(sb);
}

static void watch_ctl(struct sandbox *sb)
{
	short ev = (ctl_wants_read(sb->ctl) ? POLLIN : 0) | (ctl_wants_write(sb->ctl) ? POLLOUT : 0);
	ml_loop_watch(sb->loop, vmm_ctl_fd(sb->vm), ev, on_ctl_io, sb);
}

static void on_console(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)rev;
	struct sandbox *sb = arg;
	if (vmm_console_pump(sb->vm) != -EPIPE)
		return;
	ml_loop_unwatch(l, fd);
	int status = 0;
	for (int i = 0; i < 50 && vmm_reap(sb->vm, &status) == 0; i++)
		usleep(2000);
	char why[64];
	snprintf(why, sizeof(why), "the VM engine exited (status %d)", status);
	mark_dead(sb, why);
}

static void on_boot_timeout(struct ml_loop *l, void *arg)
{
	(void)l;
	struct sandbox *sb = arg;
	sb->boot_timer = 0;
	char secs[32];
	snprintf(secs, sizeof(secs), "%d", sb->boot_secs);
	boot_fail(sb, -ETIMEDOUT, "the guest did not answer within the boot timeout (%ss)", secs);
}

/* ---- start ---- */
static int fill_config(struct sandbox *sb)
{
	const struct sandbox_config *o = sb->cfg;
	const char *hn = o->hostname && *o->hostname ? o->hostname : sb->id;
	sb->pcfg.hostname = strdup(hn);
	size_t cap = 256 + strlen(hn);
	for (char **h = o->hosts; h && *h; h++)
		cap += strlen(*h) + 1;
	sb->pcfg.hosts = malloc(cap);
	sb->pcfg.resolv = calloc(1, 1024);
	if (!sb->pcfg.hostname || !sb->pcfg.hosts || !sb->pcfg.resolv)
		return -ENOMEM;
	int n = sprintf(sb->pcfg.hosts, "127.0.0.1 localhost localhost.localdomain %s\n", hn);
	for (char **h = o->hosts; h && *h; h++)
		n += sprintf(sb->pcfg.hosts + n, "%s\n", *h);
	sprintf(sb->pcfg.hosts + n, "::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n"
		"ff02::2 ip6-allrouters\n");
	size_t rn = 0;
	for (char **d = o->dns; d && *d && rn < 900; d++)
		rn += (size_t)snprintf(sb->pcfg.resolv + rn, 1024 - rn, "nameserver %s\n", *d);
	unsigned vcpus = (unsigned)ceil(o->cpus);
	if ((double)vcpus != o->cpus)
		sb->pcfg.cpu_quota_us = (uint32_t)(o->cpus * 100000.0);
	sb->pcfg.network = o->network;
	sb->pcfg.mtu = o->network ? o->mtu : 0;
	int r = sandbox_disks_config(sb->disks, &sb->pcfg, NULL);
	if (r < 0)
		return r;
	if (sb->vfs) {
		/* files the guest never chowned belong to the run's user: -u, else the image's USER */
		const char *owner = vfs_owner_spec(sb->vfs) ? vfs_owner_spec(sb->vfs) : sb->img->config.user;
		sb->pcfg.ws_path = strdup(vfs_workspace(sb->vfs));
		sb->pcfg.ws_owner = owner && *owner ? strdup(owner) : NULL;
		if (!sb->pcfg.ws_path)
			return -ENOMEM;
	}
	if (sb->ca_cert && !(sb->pcfg.ca_pem = strdup(sb->ca_cert)))
		return -ENOMEM;
	return 0;
}

/* The guest's NIC is live from the engine's start: serve it before the guest boots. */
static int start_network(struct sandbox *sb, struct ml_err *e)
{
	const struct sandbox_config *o = sb->cfg;
	if (vmm_net_fd(sb->vm) < 0)
		return 0;
	_cleanup_free_ struct net_publish *pub = calloc(o->n_publish + 1, sizeof(*pub));
	if (!pub)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < o->n_publish; i++)
		pub[i] = (struct net_publish){ o->publish[i].addr, o->publish[i].host_port, o->publish[i].guest_port };
	/* The flow socket's directory is <VM dir>/net, where `gc` looks after a crash (with a state
	 * dir too long for a socket address, a symlink there to a temp dir: slirpnet.h). */
	_cleanup_free_ char *net_dir = NULL;
	if (sb->state_dir && asprintf(&net_dir, "%s/net", sb->state_dir) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	struct net_opts no = {
		.runtime_dir = net_dir,
		.mtu = o->mtu, .dns = o->dns, .allow_hosts = o->allow_hosts,
		.block_private_ips = o->block_private_ips, .add_hosts = o->hosts,
		.publish = pub, .n_publish = o->n_publish, .log = sb->log,
		.intercept = sb_intercept_config(sb),
	};
	return net_start(vmm_net_fd(sb->vm), &no, &sb->net, e);
}

int sb_boot_start(struct sandbox *sb, struct ml_err *e)
{
	const struct sandbox_config *o = sb->cfg;
	const struct ml_settings *s = o->settings;
	if (fill_config(sb) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	char reason[256];
	struct vmm_config vc = {
		.state_dir = sb->state_dir, .kernel = sb->assets.kernel, .initrd = sb->prep.initrd,
		.rootfs = sb->prep.rootfs, .scratch = sb->prep.scratch, .vcpus = (unsigned)ceil(o->cpus),
		.mem_mb = o->mem_mb, .accel = vmm_accel_choose(s->accel, reason, sizeof(reason)),
		.network = o->network, .log = sb->log, .engine = s->engine, .qemu_user_net = s->qemu_user_net,
		.files = sb->vfs != NULL,
	};
	vmstate_phase(sb->state_dir, sb->id, "starting", NULL);
	vc.drives = sandbox_disks_drives(sb->disks, &vc.n_drives);
	/* the engine's command line and the accelerator's reason belong in this VM's log */
	struct ml_logger *prev = ml_logger_bind_thread(sb->log);
	int r = vmm_start(&vc, &sb->vm, e);
	ml_logger_bind_thread(prev);
	if (r < 0)
		return ml_err_wrap(e, "starting sandbox");
	if ((r = start_network(sb, e)) < 0)
		return r;
	if (sb->vfs && (r = vfs_start(sb->vfs, vmm_chan_fd(sb->vm, VMM_CHAN_FILES), e)) < 0)
		return ml_err_wrap(e, "starting sandbox");
	r = ctl_new(vmm_ctl_fd(sb->vm), &sandbox_ctl_ops, sb, &sb->ctl);
	if (r < 0)
		return ml_err_set(e, r, "starting sandbox: out of memory");
	watch_ctl(sb);
	ml_loop_watch(sb->loop, vmm_console_fd(sb->vm), POLLIN, on_console, sb);
	sb->boot_secs = o->boot_timeout_s > 0 ? o->boot_timeout_s : s->boot_timeout_s > 0 ? s->boot_timeout_s : 60;
	sb->boot_timer = ml_loop_timer(sb->loop, (int64_t)sb->boot_secs * 1000, on_boot_timeout, sb);
	return 0;
}

void sandbox_kick(struct sandbox *sb)
{
	if (sb->ctl && sb->vm && !sb->dead)
		watch_ctl(sb);
}

struct net *sandbox_net(struct sandbox *sb) { return sb->net; }

int sandbox_shutdown(struct sandbox *sb)
{
	if (!sb->ctl || sb->dead)
		return -EPIPE;
	int r = ctl_shutdown(sb->ctl);
	sandbox_kick(sb);
	return r;
}

void sb_boot_teardown(struct sandbox *sb)
{
	/* the network first: its counters are then final, and its thread is gone before the
	 * engine's fd is closed */
	net_stop(sb->net);
	sb->net = NULL;
	/* the workspace's workers hold the files channel's fd: they end before it closes */
	vfs_stop(sb->vfs);
	if (sb->vm) {
		ml_loop_unwatch(sb->loop, vmm_ctl_fd(sb->vm));
		ml_loop_unwatch(sb->loop, vmm_console_fd(sb->vm));
		/* writes still in the guest's page cache would be lost by a kill */
		if (sandbox_disks_writable(sb->disks) && sb->ctl && !sb->dead && sb->configured)
			sandbox_guest_poweroff(sb->ctl, sb->vm, 10000);
		vmm_kill(sb->vm);
		vmm_console_pump(sb->vm);
	}
	if (sb->boot_timer)
		ml_loop_cancel(sb->loop, sb->boot_timer);
	sb->boot_timer = 0;
	ctl_free(sb->ctl);
	sb->ctl = NULL;
	vmm_free(sb->vm);
	sb->vm = NULL;
	/* only now: the engine that had the disks open is gone */
	sandbox_disks_release(sb->disks);
	sb->disks = NULL;
}
