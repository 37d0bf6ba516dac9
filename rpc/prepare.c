/* rpc/prepare.c - the slow part of creating a sandbox, on a worker thread of its own: find the
 * guest assets, resolve (maybe pull) the image, create the VM's state dir and log, build the
 * rootfs (once per image, shared), the scratch disk and the initramfs (cached).
 *
 * Everything here is blocking I/O that may take minutes (a pull, a first rootfs build); on the
 * caller's loop it would freeze an rpc server's request handling. The thread talks to the loop
 * only through the mailbox (sandbox_internal.h) and touches nothing the loop uses until it has
 * posted `done`. Order matters: nothing is written under ~/.matchlock before the image is
 * known to exist, so a bad image reference leaves no trace. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "ext4/ext4.h"
#include "rpc/sandbox_internal.h"
#include "rpc/vmstate.h"

static void wake_loop(struct sandbox *sb)
{
	char b = 1;
	while (write(sb->box.wake[1], &b, 1) < 0 && errno == EINTR)
		;
}

void sb_post_progress(struct sandbox *sb, enum sandbox_step step, const char *fmt, ...)
{
	pthread_mutex_lock(&sb->box.mu);
	if (sb->box.n_progress < SB_PROGRESS_MAX) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(sb->box.progress[sb->box.n_progress].line, sizeof(sb->box.progress[0].line), fmt, ap);
		va_end(ap);
		sb->box.progress[sb->box.n_progress++].step = step;
	}
	pthread_mutex_unlock(&sb->box.mu);
	wake_loop(sb);
}

static int check_cancel(struct sandbox *sb, struct ml_err *e)
{
	return __atomic_load_n(&sb->cancel, __ATOMIC_ACQUIRE) ? ml_err_set(e, -ECANCELED, "cancelled") : 0;
}

/* Not in the store (or --pull): fetch it from its registry. */
static int pull_image(struct sandbox *sb, struct oci_store *store, struct oci_image **img, struct ml_err *e)
{
	const struct sandbox_config *c = sb->cfg;
	sb_post_progress(sb, SANDBOX_STEP_PULL, "Pulling %s...", c->image);
	struct oci_pull_opts po = { .force = c->pull, .timeout_s = 600, .cancel = &sb->cancel };
	int r = oci_pull(store, c->image, &po, img, e);
	if (r == 0) {
		ml_info("pulled %s: %s, %.1f MB", c->image, (*img)->digest, (double)(*img)->size / 1e6);
		sb_post_progress(sb, SANDBOX_STEP_PULLED, "Digest: %s\nSize: %.1f MB", (*img)->digest,
				 (double)(*img)->size / 1e6);
	}
	return r;
}

static int import_embedded(struct oci_store *store, const char *data_dir, struct ml_err *e)
{
	_cleanup_free_ char *tar = NULL;
	if (asprintf(&tar, "%s/images/default.tar", data_dir) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	_cleanup_close_ int fd = open(tar, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_set(e, -errno, "the embedded default image is missing (%s): run `make`", tar);
	struct oci_import_info info;
	int r = oci_import(store, SANDBOX_DEFAULT_IMAGE, fd, &info, e);
	return r < 0 ? ml_err_wrap(e, "importing the embedded default image") : 0;
}

static int resolve_image(struct sandbox *sb, struct oci_store *store, struct ml_err *e)
{
	const struct sandbox_config *c = sb->cfg;
	_cleanup_free_ char *norm = oci_ref_normalize(c->image, NULL);
	bool embedded = norm && strcmp(norm, SANDBOX_DEFAULT_IMAGE) == 0;
	if (c->pull && !embedded)
		return pull_image(sb, store, &sb->img, e);
	int r = oci_lookup(store, c->image, &sb->img, e);
	if (r != -ENOENT)
		return r;
	if (!embedded)
		return oci_ref_pullable(c->image, NULL) ? pull_image(sb, store, &sb->img, e) : r;
	if ((r = import_embedded(store, sb->assets.data_dir, e)) < 0)
		return r;
	return oci_lookup(store, c->image, &sb->img, e);
}

static int make_state_dir(struct sandbox *sb, struct ml_err *e)
{
	const struct ml_settings *s = sb->cfg->settings;
	_cleanup_free_ char *logs = NULL, *logf = NULL;
	if (asprintf(&sb->state_dir, "%s/vms/%s", s->state_dir, sb->id) < 0) {
		sb->state_dir = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (asprintf(&logs, "%s/logs", sb->state_dir) < 0 || asprintf(&logf, "%s/vm.log", logs) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int r = ml_mkdir_p(logs, 0700);
	if (r < 0)
		return ml_err_set(e, r, "creating %s: %s", logs, strerror(-r));
	/* the VM dir itself must be private even when ~/.matchlock/vms existed before */
	chmod(sb->state_dir, 0700);
	if ((r = ml_logger_open(logf, s->log_budget, &sb->log, e)) < 0)
		return r;
	ml_logger_bind_thread(sb->log);
	return 0;
}

static int prepare_disks(struct sandbox *sb, struct oci_store *store, struct ml_err *e)
{
	bool built = false;
	int r = oci_rootfs(store, sb->img, &sb->prep.rootfs, &built, e);
	if (r < 0)
		return ml_err_wrap(e, "building rootfs");
	if (built) {
		struct stat st;
		double mb = stat(sb->prep.rootfs, &st) == 0 ? (double)st.st_blocks * 512 / 1e6 : 0;
		sb_post_progress(sb, SANDBOX_STEP_ROOTFS_BUILT, "Built rootfs from %s (%.1f MB)", sb->cfg->image, mb);
	}
	if (asprintf(&sb->prep.scratch, "%s/scratch.ext4", sb->state_dir) < 0) {
		sb->prep.scratch = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	r = ext4_make_empty(sb->prep.scratch, sb->cfg->disk_mb << 20, e);
	return r < 0 ? ml_err_wrap(e, "creating the scratch disk") : 0;
}

static int prepare(struct sandbox *sb, struct ml_err *e)
{
	const struct ml_settings *s = sb->cfg->settings;
	struct vmm_asset_paths paths = { s->data_dir, s->kernel, s->agent };
	int r = vmm_assets_find(&paths, &sb->assets, e);
	struct oci_store *store = NULL;
	/* disks first: one another sandbox holds costs no pull, no rootfs and no boot */
	if (r == 0 && (r = sandbox_disks_attach(sb->cfg->disks, sb->cfg->n_disks, sb->id, s->holders_dir,
						&sb->disks, e)) < 0)
		ml_err_wrap(e, "attaching disks");
	if (r == 0 && (r = ml_mkdir_p(s->cache_dir, 0700)) < 0)
		ml_err_set(e, r, "creating %s: %s", s->cache_dir, strerror(-r));
	if (r == 0)
		r = oci_store_open(s->cache_dir, &store, e);
	if (r == 0)
		r = resolve_image(sb, store, e);
	if (r == 0)
		r = check_cancel(sb, e);
	if (r == 0)
		r = make_state_dir(sb, e);
	if (r == 0)
		r = vmstate_write(sb->state_dir, sb->id, sb->cfg->image, getpid(), "running", sb->cfg->record_json, e);
	if (r == 0)
		vmstate_phase(sb->state_dir, sb->id, "creating", NULL);
	if (r == 0)
		r = prepare_disks(sb, store, e);
	oci_store_free(store);
	/* overlay snapshots are copies of host trees: slow, so here and not on the loop */
	if (r == 0 && sb->cfg->vfs)
		r = vfs_new(sb->cfg->vfs, sb->state_dir, &sb->vfs, e);
	if (r == 0)
		r = check_cancel(sb, e);
	if (r == 0 && (r = vmm_initramfs(&sb->assets, s->cache_dir, &sb->prep.initrd, e)) < 0)
		ml_err_wrap(e, "building the initramfs");
	if (r == 0)
		r = sb_intercept_prepare(sb, e);
	if (sb->state_dir)
		vmstate_phase(sb->state_dir, sb->id, r == 0 ? "created" : "create_failed", r == 0 ? NULL : e->msg);
	return r;
}

void *sb_prepare_main(void *arg)
{
	struct sandbox *sb = arg;
	sb->prep.r = prepare(sb, &sb->prep.err);
	if (sb->prep.r < 0 && __atomic_load_n(&sb->cancel, __ATOMIC_ACQUIRE))
		sb->prep.r = ml_err_set(&sb->prep.err, -ECANCELED, "cancelled");
	ml_logger_bind_thread(NULL);
	pthread_mutex_lock(&sb->box.mu);
	sb->box.done = true;
	pthread_mutex_unlock(&sb->box.mu);
	wake_loop(sb);
	return NULL;
}
