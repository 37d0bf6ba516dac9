/* rpc/sandbox.c - a sandbox's life as events: start (worker thread prepares), boot (loop),
 * ready, failed or dead; cancel and destroy. See sandbox.h for the contract. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "rpc/sandbox_internal.h"
#include "rpc/vmstate.h"

const char *sandbox_id(const struct sandbox *sb) { return sb->id; }
const char *sandbox_state_dir(const struct sandbox *sb) { return sb->state_dir; }
bool sandbox_is_ready(const struct sandbox *sb) { return sb->state == SB_READY; }
bool sandbox_intercepts(const struct sandbox *sb) { return sb->intercept; }
const struct oci_config *sandbox_image_config(const struct sandbox *sb) { return &sb->img->config; }
struct ctl *sandbox_ctl(struct sandbox *sb) { return sb->ctl; }
struct vfs *sandbox_vfs(struct sandbox *sb) { return sb->vfs; }
struct ml_logger *sandbox_logger(struct sandbox *sb) { return sb->worker_running ? NULL : sb->log; }
const char *sandbox_console_tail(struct sandbox *sb) { return sb->vm ? vmm_console_tail(sb->vm) : ""; }
char *const *sandbox_guest_env(const struct sandbox *sb) { return sb->guest_env; }

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

static void join_worker(struct sandbox *sb)
{
	if (!sb->worker_running)
		return;
	pthread_join(sb->worker, NULL);
	sb->worker_running = false;
}

static void after_prepare(struct sandbox *sb)
{
	join_worker(sb);
	ml_loop_unwatch(sb->loop, sb->box.wake[0]);
	struct ml_err e = { 0 };
	if (sb->prep.r < 0) {
		sb_fail(sb, &sb->prep.err);
		return;
	}
	if (__atomic_load_n(&sb->cancel, __ATOMIC_ACQUIRE)) {
		ml_err_set(&e, -ECANCELED, "cancelled");
		sb_fail(sb, &e);
		return;
	}
	sb->state = SB_BOOTING;
	if (sb->ev->progress)
		sb->ev->progress(sb->arg, sb, SANDBOX_STEP_BOOT, NULL);
	if (sb->state == SB_BOOTING && sb_boot_start(sb, &e) < 0)
		sb_fail(sb, &e);
}

/* The worker woke us: deliver its progress lines in order, then its outcome. */
static void on_mailbox(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)rev;
	struct sandbox *sb = arg;
	char drain[64];
	while (read(fd, drain, sizeof(drain)) > 0)
		;
	for (;;) {
		pthread_mutex_lock(&sb->box.mu);
		bool done = sb->box.done;
		size_t n = sb->box.n_progress;
		typeof(sb->box.progress[0]) msgs[SB_PROGRESS_MAX];
		memcpy(msgs, sb->box.progress, n * sizeof(msgs[0]));
		sb->box.n_progress = 0;
		pthread_mutex_unlock(&sb->box.mu);
		for (size_t i = 0; i < n && sb->state == SB_PREPARING; i++)
			if (sb->ev->progress)
				sb->ev->progress(sb->arg, sb, msgs[i].step, msgs[i].line);
		if (n == 0 || done)
			break;
	}
	pthread_mutex_lock(&sb->box.mu);
	bool done = sb->box.done && sb->box.n_progress == 0;
	pthread_mutex_unlock(&sb->box.mu);
	if (done && sb->state == SB_PREPARING)
		after_prepare(sb);
}

static int validate(const struct sandbox_config *c, struct ml_err *e)
{
	if (!c->settings || !c->settings->cache_dir || !c->settings->state_dir)
		return ml_err_set(e, -EINVAL, "sandbox: settings (cache and state dirs) are required");
	if (!c->image || !*c->image)
		return ml_err_set(e, -EINVAL, "image is required (e.g., alpine:latest)");
	if (!(c->cpus > 0) || c->mem_mb == 0 || c->disk_mb == 0)
		return ml_err_set(e, -EINVAL, "sandbox: cpus, memory and disk size must be > 0");
	return 0;
}

int sandbox_start(const struct sandbox_config *c, struct ml_loop *loop, const struct sandbox_events *ev,
		  void *arg, struct sandbox **out, struct ml_err *e)
{
	int r = validate(c, e);
	if (r < 0)
		return r;
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return ml_err_set(e, -ENOMEM, "out of memory");
	*sb = (struct sandbox){ .cfg = c, .ev = ev, .arg = arg, .loop = loop, .state = SB_PREPARING,
				.box.wake = { -1, -1 } };
	new_vm_id(sb->id);
	pthread_mutex_init(&sb->box.mu, NULL);
	if (pipe2(sb->box.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = ml_err_set(e, -errno, "creating a pipe: %s", strerror(errno));
		sandbox_destroy(sb, false);
		return r;
	}
	ml_loop_watch(loop, sb->box.wake[0], POLLIN, on_mailbox, sb);
	if ((r = -pthread_create(&sb->worker, NULL, sb_prepare_main, sb)) < 0) {
		ml_err_set(e, r, "starting the sandbox's worker thread: %s", strerror(-r));
		sandbox_destroy(sb, false);
		return r;
	}
	sb->worker_running = true;
	*out = sb;
	return 0;
}

int sandbox_set_events(struct sandbox *sb, const struct sandbox_events *ev, void *arg)
{
	sb->ev = ev;
	sb->arg = arg;
	return 0;
}

void sandbox_cancel(struct sandbox *sb)
{
	if (!sb || sb->state == SB_READY || sb->state == SB_FAILED)
		return;
	__atomic_store_n(&sb->cancel, 1, __ATOMIC_RELEASE);
	if (sb->state == SB_BOOTING) {
		struct ml_err e = { 0 };
		ml_err_set(&e, -ECANCELED, "cancelled");
		sb_fail(sb, &e);
	}
	/* while preparing, the worker notices, stops at its next step and reports */
}

void sandbox_destroy(struct sandbox *sb, bool remove_state)
{
	if (!sb)
		return;
	__atomic_store_n(&sb->cancel, 1, __ATOMIC_RELEASE);
	join_worker(sb);
	if (sb->box.wake[0] >= 0) {
		ml_loop_unwatch(sb->loop, sb->box.wake[0]);
		close(sb->box.wake[0]);
		close(sb->box.wake[1]);
	}
	bool started = sb->vm != NULL;
	if (started && !remove_state)
		vmstate_phase(sb->state_dir, sb->id, "stopping", NULL);
	sb_boot_teardown(sb);
	vfs_free(sb->vfs); /* removes the overlay snapshots, even with the state dir kept */
	ml_logger_close(sb->log);
	if (remove_state && sb->state_dir) {
		ml_rm_rf(sb->state_dir);
	} else if (sb->state_dir) {
		/* the writable layer is throw-away; the logs, record and history stay */
		if (sb->prep.scratch)
			unlink(sb->prep.scratch);
		struct ml_err e;
		vmstate_set_status(sb->state_dir, "stopped", 0, &e);
		if (started)
			vmstate_phase(sb->state_dir, sb->id, "stopped", NULL);
	}
	vmm_assets_free(&sb->assets);
	oci_image_free(sb->img);
	proto_config_free(&sb->pcfg);
	sb_intercept_free(sb);
	free(sb->prep.rootfs);
	free(sb->prep.scratch);
	free(sb->prep.initrd);
	free(sb->state_dir);
	pthread_mutex_destroy(&sb->box.mu);
	free(sb);
}
