/* vfs/vfs.c - one VM's workspace: mounts opened (or copied) at creation, the tree built, the
 * channel served until stop, the copies removed at the end. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "vfs/internal.h"
#include "vfs/snapshot.h"

#define DEFAULT_WORKERS 4
#define MAX_WORKERS 64

const char *vfs_workspace(const struct vfs *v) { return v->workspace; }
const char *vfs_owner_spec(const struct vfs *v) { return v->owner_spec; }

static int take_snapshot(struct vmount *m, const struct vfs_mount_cfg *mc, const char *state_dir,
			 size_t idx, struct ml_err *e)
{
	const char *pre = "prepare overlay mount snapshot";
	if (!mc->host_path || !*mc->host_path)
		return ml_err_set(e, -EINVAL, "%s: %s: host_path is required for overlay mounts", pre, m->guest_path);
	if (mc->upper_lower)
		return ml_err_set(e, -EINVAL, "%s: %s: upper and lower are not supported for overlay mounts",
				  pre, m->guest_path);
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/overlay", state_dir) < 0 || asprintf(&m->snapshot, "%s/overlay/mount-%03zu", state_dir, idx) < 0) {
		m->snapshot = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ml_err_set(e, -errno, "%s: %s: create %s: %s", pre, m->guest_path, dir, strerror(errno));
	struct snapshot_stats st;
	int r = snapshot_take(mc->host_path, m->snapshot, &st, e);
	if (r < 0)
		return ml_err_wrap(e, "%s: %s", pre, m->guest_path);
	ml_info("vfs: overlay %s: copied %s (%llu entries, %.1f MB: %llu reflinked, %llu by "
		"copy_file_range, %llu read+write) in %.3f s", m->guest_path, mc->host_path,
		(unsigned long long)st.files, (double)st.bytes / 1e6, (unsigned long long)st.reflinked,
		(unsigned long long)st.ranged, (unsigned long long)st.copied, st.seconds);
	_cleanup_free_ char *served = NULL;
	struct stat hs;
	if (stat(mc->host_path, &hs) == 0 && !S_ISDIR(hs.st_mode)) {
		const char *base = strrchr(mc->host_path, '/');
		if (asprintf(&served, "%s/%s", m->snapshot, base ? base + 1 : mc->host_path) < 0)
			return ml_err_set(e, -ENOMEM, "out of memory");
	}
	r = hostfs_open_root(m, served ? served : m->snapshot, e);
	return r < 0 ? ml_err_wrap(e, "%s: %s", pre, m->guest_path) : 0;
}

static int open_mount(struct vfs *v, struct vmount *m, const struct vfs_mount_cfg *mc,
		      const char *state_dir, size_t idx, struct ml_err *e)
{
	char g[PATH_MAX];
	if (!mc->guest_path || vfs_path_clean(mc->guest_path, g, sizeof(g)) < 0 || !(m->guest_path = strdup(g)))
		return ml_err_set(e, -EINVAL, "vfs: a mount has no usable guest path");
	m->type = mc->type;
	m->readonly = mc->readonly;
	m->dirfd = -1;
	m->dev_tag = (uint64_t)(idx + 1) << 56;
	switch (mc->type) {
	case VFS_MOUNT_MEMORY:
		m->be = &vfs_memfs;
		m->mroot = memfs_root(v->memfs, 0755, 0, 0);
		return m->mroot ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
	case VFS_MOUNT_OVERLAY:
		return take_snapshot(m, mc, state_dir, idx, e);
	case VFS_MOUNT_HOST_FS:
		if (!mc->host_path || !*mc->host_path)
			return ml_err_set(e, -EINVAL, "vfs mount %s: host_path is required for host_fs mounts", m->guest_path);
		return hostfs_open_root(m, mc->host_path, e) < 0 ? ml_err_wrap(e, "vfs mount %s", m->guest_path) : 0;
	}
	return ml_err_set(e, -EINVAL, "vfs mount %s: unknown type", m->guest_path);
}

static int copy_rules(struct vfs *v, const struct vfs_config *c)
{
	if (!c->n_rules)
		return 0;
	v->rules = calloc(c->n_rules, sizeof(*v->rules));
	if (!v->rules)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_rules; i++) {
		struct vfs_rule *d = &v->rules[v->n_rules++];
		*d = c->rules[i];
		d->name = c->rules[i].name ? strdup(c->rules[i].name) : NULL;
		char clean[PATH_MAX];
		d->path = NULL;
		/* rules match cleaned paths, so "/workspace//x/" means "/workspace/x" */
		if (c->rules[i].path && *c->rules[i].path && vfs_path_clean(c->rules[i].path, clean, sizeof(clean)) == 0)
			d->path = strdup(clean);
		if (d->action == VFS_ACTION_BLOCK && !d->after)
			v->intercept = true;
	}
	return 0;
}

/* Memory mounts' roots are inodes their pinned nodes hold. */
static void attach_memory_roots(struct vfs *v, struct node *n)
{
	if (n->mount_root && n->m && n->m->type == VFS_MOUNT_MEMORY && !n->mi)
		n->mi = n->m->mroot;
	for (size_t i = 0; i < n->nkids; i++)
		attach_memory_roots(v, n->kids[i]);
}

static int build(struct vfs *v, const struct vfs_config *c, const char *state_dir, struct ml_err *e)
{
	char ws[PATH_MAX];
	if (!c->workspace || vfs_path_clean(c->workspace, ws, sizeof(ws)) < 0 || ws[0] != '/')
		return ml_err_set(e, -EINVAL, "vfs: the workspace must be an absolute path");
	if (!(v->workspace = strdup(ws)) || (c->owner && !(v->owner_spec = strdup(c->owner))))
		return ml_err_set(e, -ENOMEM, "out of memory");
	v->workers = c->workers ? (c->workers > MAX_WORKERS ? MAX_WORKERS : c->workers) : DEFAULT_WORKERS;
	v->events_on = c->emit_events || c->n_rules > 0;
	v->intercept = v->events_on;
	if (copy_rules(v, c) < 0 || memfs_new(c->memory_limit, &v->memfs) < 0 || vtree_init(v) < 0 ||
	    handles_init(v) < 0 || hooks_init(v) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	v->mounts = calloc(c->n_mounts ? c->n_mounts : 1, sizeof(*v->mounts));
	if (!v->mounts)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n_mounts; i++) {
		struct vmount *m = &v->mounts[v->n_mounts++];
		int r = open_mount(v, m, &c->mounts[i], state_dir, i, e);
		if (r < 0)
			return r;
		if (m->be == &vfs_hostfs && !v->host_dev)
			v->host_dev = m->dev;
	}
	int r = vtree_build(v, e);
	if (r == 0)
		attach_memory_roots(v, v->root);
	return r;
}

int vfs_new(const struct vfs_config *c, const char *state_dir, struct vfs **out, struct ml_err *e)
{
	struct vfs *v = calloc(1, sizeof(*v));
	if (!v)
		return ml_err_set(e, -ENOMEM, "out of memory");
	v->fd = -1;
	pthread_mutex_init(&v->rd_mu, NULL);
	pthread_mutex_init(&v->wr_mu, NULL);
	pthread_mutex_init(&v->sync_mu, NULL);
	pthread_cond_init(&v->sync_cv, NULL);
	int r = build(v, c, state_dir, e);
	if (r < 0) {
		vfs_free(v);
		return r;
	}
	*out = v;
	return 0;
}

void vfs_free(struct vfs *v)
{
	if (!v)
		return;
	vfs_stop(v);
	if (v->id_tab) {
		handles_free(v);
		vtree_free(v);
	}
	for (size_t i = 0; i < v->n_mounts; i++) {
		struct vmount *m = &v->mounts[i];
		if (m->dirfd >= 0)
			close(m->dirfd);
		if (m->snapshot && snapshot_remove(m->snapshot) < 0)
			ml_warn("vfs: could not remove the overlay copy %s", m->snapshot);
		free(m->guest_path);
		free(m->base);
		free(m->snapshot);
	}
	free(v->mounts);
	hooks_free(v);
	for (size_t i = 0; i < v->n_rules; i++)
		vfs_rule_free(&v->rules[i]);
	free(v->rules);
	memfs_free(v->memfs);
	pthread_mutex_destroy(&v->rd_mu);
	pthread_mutex_destroy(&v->wr_mu);
	pthread_mutex_destroy(&v->sync_mu);
	pthread_cond_destroy(&v->sync_cv);
	free(v->workspace);
	free(v->owner_spec);
	free(v);
}

void vfs_get_stats(struct vfs *v, struct vfs_stats *s)
{
	*s = (struct vfs_stats){
		.requests = __atomic_load_n(&v->n_requests, __ATOMIC_RELAXED),
		.errors = __atomic_load_n(&v->n_errors, __ATOMIC_RELAXED),
		.blocked = __atomic_load_n(&v->n_blocked, __ATOMIC_RELAXED),
		.max_inflight = __atomic_load_n(&v->max_inflight, __ATOMIC_RELAXED),
	};
	pthread_mutex_lock(&v->ev.lock);
	s->events = v->ev.total;
	s->events_dropped = v->ev.dropped;
	pthread_mutex_unlock(&v->ev.lock);
	vtree_lock(v);
	s->nodes = vtree_count(v);
	vtree_unlock(v);
	s->handles = handles_count(v);
}
