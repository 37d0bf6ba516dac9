/* rpc/sandbox.c - bring one sandbox up to "agent ready", and take it down.
 *
 * Order matters for speed: everything the VM needs (rootfs, scratch disk, initramfs) is ready
 * before the engine starts, and the engine starts as early as possible; then the loop waits
 * for HELLO, sends CONFIG, and waits for READY. A boot that never answers ends at the boot
 * timeout with the console's tail, so a hung guest cannot hang the supervisor. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "ext4/ext4.h"
#include "rpc/net.h"
#include "rpc/sandbox.h"
#include "rpc/vmstate.h"

enum boot_state { BOOT_WAIT_HELLO, BOOT_WAIT_READY, BOOT_READY, BOOT_FAILED };

struct sandbox {
	char id[16];
	char *state_dir;
	struct oci_image *img;
	struct vmm_assets assets;
	struct vmm *vm;
	struct ctl *ctl;
	struct net *net;
	struct ml_loop *loop;
	int log_fd;
	enum boot_state boot;
	struct proto_config cfg;
	struct ml_err boot_err;
	int boot_timer;
	int boot_secs;
	void (*on_dead)(void *arg, const char *msg);
	void (*on_pong)(void *arg, const uint8_t *data, size_t len);
	void *arg;
	bool dead;
};

const char *sandbox_id(const struct sandbox *sb) { return sb->id; }
const struct oci_config *sandbox_image_config(const struct sandbox *sb) { return &sb->img->config; }
struct ctl *sandbox_ctl(struct sandbox *sb) { return sb->ctl; }
int sandbox_log_fd(const struct sandbox *sb) { return sb->log_fd; }
const char *sandbox_console_tail(struct sandbox *sb) { return sb->vm ? vmm_console_tail(sb->vm) : ""; }

static void new_vm_id(char out[16])
{
	uint8_t b[4] = { 0 };
	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint32_t v = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() << 16;
		memcpy(b, &v, 4);
	}
	snprintf(out, 16, "vm-%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

static void boot_fail(struct sandbox *sb, int code, const char *fmt, const char *detail)
{
	if (sb->boot == BOOT_READY || sb->boot == BOOT_FAILED)
		return;
	sb->boot = BOOT_FAILED;
	const char *tail = sb->vm ? vmm_console_tail(sb->vm) : "";
	ml_err_set(&sb->boot_err, code, fmt, detail, *tail ? "; last console output:\n" : "", tail);
	ml_loop_stop(sb->loop);
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
	if (sb->boot != BOOT_READY) {
		boot_fail(sb, -EIO, "%s%s%s", msg);
		return;
	}
	if (sb->dead)
		return;
	sb->dead = true;
	if (sb->on_dead)
		sb->on_dead(sb->arg, msg);
}

/* ---- control channel callbacks ---- */
static void on_hello(void *arg, uint32_t version, const char *info)
{
	struct sandbox *sb = arg;
	ml_info("agent hello: version %u, %s", version, info);
	if (version != PROTO_VERSION) {
		boot_fail(sb, -EPROTO, "guest agent speaks protocol version %s%s%s", version > 0 ? "other" : "0");
		return;
	}
	sb->cfg.time_ns = 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	sb->cfg.time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (ctl_configure(sb->ctl, &sb->cfg) < 0)
		boot_fail(sb, -EIO, "sending the guest its configuration failed%s%s%s", "");
	sb->boot = BOOT_WAIT_READY;
}

static void on_ready(void *arg)
{
	struct sandbox *sb = arg;
	if (sb->boot != BOOT_WAIT_READY)
		return;
	sb->boot = BOOT_READY;
	ml_loop_cancel(sb->loop, sb->boot_timer);
	ml_loop_stop(sb->loop);
}

static void on_config_failed(void *arg, const char *msg)
{
	boot_fail(arg, -EIO, "guest setup failed: %s%s%s", msg);
}

static void on_agent_log(void *arg, const char *line)
{
	struct sandbox *sb = arg;
	dprintf(sb->log_fd, "[agent] %s\n", line);
}

static void on_closed(void *arg, const char *msg) { mark_dead(arg, msg); }

static void on_pong(void *arg, const uint8_t *data, size_t len)
{
	struct sandbox *sb = arg;
	if (sb->on_pong)
		sb->on_pong(sb->arg, data, len);
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
	char secs[32];
	snprintf(secs, sizeof(secs), "%d", sb->boot_secs);
	boot_fail(sb, -ETIMEDOUT, "the guest did not answer within the boot timeout (%ss)%s%s", secs);
}

/* ---- preparation ---- */
/* Not in the store (or --pull): fetch it from its registry. Progress goes to stderr (stdout
 * belongs to the guest command), and only on a terminal: in a script, a run whose image turns
 * out bad prints exactly one line, the error. The VM log records the pull either way. */
static int pull_image(struct oci_store *store, const struct sandbox_opts *o, struct oci_image **img,
		      struct ml_err *e)
{
	bool tty = isatty(STDERR_FILENO);
	if (tty)
		fprintf(stderr, "Pulling %s...\n", o->image);
	struct oci_pull_opts po = { .force = o->pull, .timeout_s = 600 };
	int r = oci_pull(store, o->image, &po, img, e);
	if (r == 0) {
		ml_info("pulled %s: %s, %.1f MB", o->image, (*img)->digest, (double)(*img)->size / 1e6);
		if (tty)
			fprintf(stderr, "Digest: %s\nSize: %.1f MB\n", (*img)->digest, (double)(*img)->size / 1e6);
	}
	return r;
}

static int resolve_image(struct oci_store *store, const struct sandbox_opts *o, const char *data_dir,
			 struct oci_image **img, struct ml_err *e)
{
	_cleanup_free_ char *norm = oci_ref_normalize(o->image, NULL);
	bool embedded = norm && strcmp(norm, SANDBOX_DEFAULT_IMAGE) == 0;
	if (o->pull && !embedded)
		return pull_image(store, o, img, e);
	int r = oci_lookup(store, o->image, img, e);
	if (r != -ENOENT)
		return r;
	if (!embedded) {
		if (!oci_ref_pullable(o->image, NULL))
			return r;
		return pull_image(store, o, img, e);
	}
	_cleanup_free_ char *tar = NULL;
	if (asprintf(&tar, "%s/images/default.tar", data_dir) < 0)
		return -ENOMEM;
	_cleanup_close_ int fd = open(tar, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_set(e, -errno, "the embedded default image is missing (%s): run `make`", tar);
	struct oci_import_info info;
	r = oci_import(store, SANDBOX_DEFAULT_IMAGE, fd, &info, e);
	if (r < 0)
		return ml_err_wrap(e, "importing the embedded default image");
	return oci_lookup(store, o->image, img, e);
}

static int prepare_disks(struct sandbox *sb, struct oci_store *store, const struct sandbox_opts *o,
			 char **rootfs, char **scratch, struct ml_err *e)
{
	bool built = false;
	int r = oci_rootfs(store, sb->img, rootfs, &built, e);
	if (r < 0)
		return ml_err_wrap(e, "building rootfs");
	if (built) {
		struct stat st;
		double mb = stat(*rootfs, &st) == 0 ? (double)st.st_blocks * 512 / 1e6 : 0;
		fprintf(stderr, "Built rootfs from %s (%.1f MB)\n", o->image, mb);
	}
	if (asprintf(scratch, "%s/scratch.ext4", sb->state_dir) < 0)
		return -ENOMEM;
	r = ext4_make_empty(*scratch, o->disk_mb << 20, e);
	return r < 0 ? ml_err_wrap(e, "creating the scratch disk") : 0;
}

static int make_state_dir(struct sandbox *sb, struct ml_err *e)
{
	_cleanup_free_ char *root = ml_state_dir();
	if (!root || asprintf(&sb->state_dir, "%s/vms/%s", root, sb->id) < 0)
		return -ENOMEM;
	_cleanup_free_ char *logs = NULL;
	if (asprintf(&logs, "%s/logs", sb->state_dir) < 0)
		return -ENOMEM;
	int r = ml_mkdir_p(logs, 0700);
	if (r < 0)
		return ml_err_set(e, r, "creating %s: %s", logs, strerror(-r));
	_cleanup_free_ char *logf = NULL;
	if (asprintf(&logf, "%s/vm.log", logs) < 0)
		return -ENOMEM;
	sb->log_fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (sb->log_fd < 0)
		return ml_err_set(e, -errno, "creating %s: %s", logf, strerror(errno));
	ml_log_set_file(sb->log_fd);
	return 0;
}

static int fill_config(struct sandbox *sb, const struct sandbox_opts *o)
{
	const char *hn = o->hostname && *o->hostname ? o->hostname : sb->id;
	sb->cfg.hostname = strdup(hn);
	size_t cap = 256;
	for (char **h = o->hosts; h && *h; h++)
		cap += strlen(*h) + 1;
	sb->cfg.hosts = malloc(cap + strlen(hn));
	sb->cfg.resolv = calloc(1, 1024);
	if (!sb->cfg.hostname || !sb->cfg.hosts || !sb->cfg.resolv)
		return -ENOMEM;
	int n = sprintf(sb->cfg.hosts, "127.0.0.1 localhost localhost.localdomain %s\n", hn);
	for (char **h = o->hosts; h && *h; h++)
		n += sprintf(sb->cfg.hosts + n, "%s\n", *h);
	sprintf(sb->cfg.hosts + n, "::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n"
		"ff02::2 ip6-allrouters\n");
	size_t rn = 0;
	for (char **d = o->dns; d && *d && rn < 900; d++)
		rn += (size_t)snprintf(sb->cfg.resolv + rn, 1024 - rn, "nameserver %s\n", *d);
	unsigned vcpus = (unsigned)ceil(o->cpus);
	if ((double)vcpus != o->cpus)
		sb->cfg.cpu_quota_us = (uint32_t)(o->cpus * 100000.0);
	sb->cfg.network = o->network;
	sb->cfg.mtu = o->network ? o->mtu : 0;
	return 0;
}

/* The guest's NIC is live from the engine's start: serve it before the guest boots. */
static int start_network(struct sandbox *sb, const struct sandbox_opts *o, struct ml_err *e)
{
	if (vmm_net_fd(sb->vm) < 0)
		return 0;
	_cleanup_free_ struct net_publish *pub = calloc(o->n_publish + 1, sizeof(*pub));
	if (!pub)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < o->n_publish; i++)
		pub[i] = (struct net_publish){ o->publish[i].addr, o->publish[i].host_port,
					       o->publish[i].guest_port };
	struct net_opts no = {
		.mtu = o->mtu, .dns = o->dns, .allow_hosts = o->allow_hosts,
		.block_private_ips = o->block_private_ips, .add_hosts = o->hosts,
		.publish = pub, .n_publish = o->n_publish,
	};
	return net_start(vmm_net_fd(sb->vm), &no, &sb->net, e);
}

static int boot_vm(struct sandbox *sb, const struct sandbox_opts *o, const char *rootfs,
		   const char *scratch, const char *initrd, struct ml_err *e)
{
	char reason[256];
	struct vmm_config vc = {
		.state_dir = sb->state_dir, .kernel = sb->assets.kernel, .initrd = initrd,
		.rootfs = rootfs, .scratch = scratch, .vcpus = (unsigned)ceil(o->cpus),
		.mem_mb = o->mem_mb, .accel = vmm_accel_choose(reason, sizeof(reason)),
		.network = o->network, .log_fd = sb->log_fd,
	};
	int r = vmm_start(&vc, &sb->vm, e);
	if (r < 0)
		return ml_err_wrap(e, "starting sandbox");
	if ((r = start_network(sb, o, e)) < 0)
		return r;
	r = ctl_new(vmm_ctl_fd(sb->vm), &sandbox_ctl_ops, sb, &sb->ctl);
	if (r < 0)
		return ml_err_set(e, r, "starting sandbox: out of memory");
	watch_ctl(sb);
	ml_loop_watch(sb->loop, vmm_console_fd(sb->vm), POLLIN, on_console, sb);
	int secs = o->boot_timeout_s;
	const char *env = getenv("MATCHLOCK_BOOT_TIMEOUT");
	if (secs <= 0)
		secs = env && atoi(env) > 0 ? atoi(env) : 60;
	sb->boot_secs = secs;
	sb->boot_timer = ml_loop_timer(sb->loop, (int64_t)secs * 1000, on_boot_timeout, sb);
	r = ml_loop_run(sb->loop);
	if (sb->boot != BOOT_READY) {
		*e = sb->boot_err;
		return e->code ? e->code : -EIO;
	}
	return r;
}

int sandbox_create(const struct sandbox_opts *o, struct ml_loop *loop, struct sandbox **out,
		   struct ml_err *e)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return ml_err_set(e, -ENOMEM, "out of memory");
	sb->loop = loop;
	sb->log_fd = -1;
	sb->on_dead = o->on_dead;
	sb->on_pong = o->on_pong;
	sb->arg = o->arg;
	new_vm_id(sb->id);
	int r = vmm_assets_find(&sb->assets, e);
	_cleanup_free_ char *cache = ml_cache_dir();
	_cleanup_free_ char *rootfs = NULL, *scratch = NULL, *initrd = NULL;
	struct oci_store *store = NULL;
	if (r == 0 && !cache)
		r = ml_err_set(e, -ENOMEM, "out of memory");
	if (r == 0)
		r = ml_store_open(&store, e);
	if (r == 0)
		r = resolve_image(store, o, sb->assets.data_dir, &sb->img, e);
	if (r == 0)
		r = make_state_dir(sb, e);
	if (r == 0)
		r = vmstate_write(sb->state_dir, sb->id, o->image, getpid(), "running", e);
	if (r == 0)
		r = prepare_disks(sb, store, o, &rootfs, &scratch, e);
	if (r == 0 && (r = vmm_initramfs(&sb->assets, cache, &initrd, e)) < 0)
		ml_err_wrap(e, "building the initramfs");
	oci_store_free(store);
	if (r == 0 && (r = fill_config(sb, o)) < 0)
		ml_err_set(e, r, "out of memory");
	if (r == 0) {
		sb->boot_timer = 0;
		r = boot_vm(sb, o, rootfs, scratch, initrd, e);
	}
	if (r < 0) {
		sandbox_destroy(sb, true);
		return r;
	}
	*out = sb;
	return 0;
}

void sandbox_destroy(struct sandbox *sb, bool remove_state)
{
	if (!sb)
		return;
	/* the network first: its counters are then final, and its thread is gone before the
	 * engine's fd is closed */
	net_stop(sb->net);
	sb->net = NULL;
	if (sb->vm) {
		ml_loop_unwatch(sb->loop, vmm_ctl_fd(sb->vm));
		ml_loop_unwatch(sb->loop, vmm_console_fd(sb->vm));
		vmm_kill(sb->vm);
		vmm_console_pump(sb->vm);
	}
	if (sb->boot_timer)
		ml_loop_cancel(sb->loop, sb->boot_timer);
	ctl_free(sb->ctl);
	vmm_free(sb->vm);
	ml_log_set_file(-1);
	if (sb->log_fd >= 0)
		close(sb->log_fd);
	if (remove_state && sb->state_dir)
		ml_rm_rf(sb->state_dir);
	vmm_assets_free(&sb->assets);
	oci_image_free(sb->img);
	proto_config_free(&sb->cfg);
	free(sb->state_dir);
	free(sb);
}
