/* vfs/vops.c - the workspace's operations, one place for both callers: the guest's FUSE requests
 * (fuse_ops.c) and the host-side files API (files.c). Each one finds the node's mount, refuses
 * what the mount cannot do (a read-only mount: EROFS; a synthesized directory: EROFS; a mount
 * point: EBUSY; across mounts: EXDEV), asks the block rules, calls the mount's backend, keeps
 * the node tree in step with what happened on the storage, and emits the file event. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfs/internal.h"
#include "vfs/vops.h"

/* ---- guest paths for rules and events (only built when something listens) ---- */
static void gpath(struct vfs *v, struct node *n, const char *name, char *buf, size_t size)
{
	vtree_lock(v);
	int r = vtree_guest_path(v, n, name, buf, size);
	vtree_unlock(v);
	if (r < 0) /* a node removed meanwhile: its name is all we still know */
		snprintf(buf, size, "%s", name ? name : n->name);
}

/* -EPERM when a before-rule blocks op on (n, name); fills path for the event. */
static int gate(struct vfs *v, enum vfs_op op, struct node *n, const char *name, char *path, size_t size)
{
	path[0] = '\0';
	if (!v->intercept)
		return 0;
	gpath(v, n, name, path, size);
	return hooks_blocked(v, op, path) ? -EPERM : 0;
}

static void event(struct vfs *v, enum vfs_op op, const char *path, uint64_t size, const struct vfs_attr *a)
{
	if (v->events_on && path[0])
		hooks_event(v, op, path, size, a);
}

void vfs_synth_attr(struct vfs *v, struct node *n, struct vfs_attr *a)
{
	*a = (struct vfs_attr){ .ino = n->id | 1ull << 63, .size = 4096, .mode = S_IFDIR | 0755,
				.nlink = 2, .uid = v->owner_uid, .gid = v->owner_gid };
}

static bool synth(const struct node *n) { return n->m == NULL; }

/* A node the tree holds for (dir, name), with its memory inode (the backend's reference) and
 * one reference of the asked kind: the kernel's (kref) or the caller's. */
static struct node *adopt(struct vfs *v, struct node *dir, const char *name, struct mem_inode *mi, bool kref)
{
	vtree_lock(v);
	struct node *n = vtree_child_make(v, dir, name);
	if (n) {
		if (mi) {
			struct mem_inode *old = n->mi;
			n->mi = mi;
			mi = old;
		}
		if (kref)
			vtree_lookup_ref(n);
		else
			vtree_ref(n);
	}
	vtree_unlock(v);
	if (mi)
		memfs_inode_unref(v->memfs, mi);
	return n;
}

void vop_put(struct vfs *v, struct node *n)
{
	if (!n)
		return;
	vtree_lock(v);
	vtree_unref(v, n);
	vtree_unlock(v);
}

/* A node removed from its directory (unlinked or renamed over) while open: fstat, fchmod and
 * the like reach it through one of its open files; the guest kernel does not always send one. */
static struct handle *orphan_handle(struct vfs *v, struct node *n, struct handle *h)
{
	if (h || n->m == NULL || n->mi)
		return NULL;
	vtree_lock(v);
	bool detached = !n->parent && !n->mount_root;
	vtree_unlock(v);
	return detached ? handle_of_node(v, n) : NULL;
}

int vop_getattr(struct vfs *v, struct node *n, struct handle *h, struct vfs_attr *a)
{
	if (synth(n)) {
		vfs_synth_attr(v, n, a);
		return 0;
	}
	struct handle *o = orphan_handle(v, n, h);
	int r = n->m->be->getattr(v, n, h ? h : o, a);
	handle_put(v, o);
	return r;
}

int vop_stat(struct vfs *v, struct node *n, struct handle *h, struct vfs_attr *a)
{
	char path[PATH_MAX];
	int r = gate(v, VFS_OP_STAT, n, NULL, path, sizeof(path));
	if (r == 0)
		r = vop_getattr(v, n, h, a);
	if (r == 0)
		event(v, VFS_OP_STAT, path, 0, a);
	return r;
}

int vop_lookup(struct vfs *v, struct node *dir, const char *name, bool kref, struct node **out,
	       struct vfs_attr *a)
{
	char path[PATH_MAX];
	*out = NULL;
	vtree_lock(v);
	struct node *pinned = NULL;
	for (size_t i = 0; i < dir->nkids; i++)
		if (!strcmp(dir->kids[i]->name, name))
			pinned = dir->kids[i];
	if (pinned)
		vtree_ref(pinned);
	vtree_unlock(v);
	int r = gate(v, VFS_OP_STAT, dir, name, path, sizeof(path));
	if (r == 0 && pinned) {
		r = vop_getattr(v, pinned, NULL, a);
		if (r == 0) {
			vtree_lock(v);
			if (kref)
				vtree_lookup_ref(pinned);
			else
				vtree_ref(pinned);
			vtree_unlock(v);
			*out = pinned;
		}
	} else if (r == 0) {
		struct mem_inode *mi = NULL;
		r = synth(dir) ? -ENOENT : dir->m->be->lookup(v, dir, name, a, &mi);
		if (r == 0 && !(*out = adopt(v, dir, name, mi, kref)))
			r = -ENOMEM;
	}
	vop_put(v, pinned);
	if (r == 0)
		event(v, VFS_OP_STAT, path, 0, a);
	return r;
}

/* Modifying dir's entries: the mount must allow it. */
static int writable_dir(struct node *dir)
{
	if (synth(dir))
		return -EROFS;
	if (dir->m->readonly)
		return -EROFS;
	if (dir->m->single_file)
		return -ENOTDIR;
	return 0;
}

static int pinned_entry(struct vfs *v, struct node *dir, const char *name)
{
	vtree_lock(v);
	bool p = false;
	for (size_t i = 0; i < dir->nkids; i++)
		p |= !strcmp(dir->kids[i]->name, name);
	vtree_unlock(v);
	return p ? -EBUSY : 0;
}

/* Set-id bits dropped as Linux drops them, for the cases FUSE_HANDLE_KILLPRIV_V2 leaves to the
 * filesystem: a write or truncate by a caller without CAP_FSETID, and any chown of a file.
 * set-gid goes only where group execute is set (otherwise it marks mandatory locking). Adds
 * FATTR_MODE to s when a bit has to go. */
static int kill_suidgid(struct vfs *v, struct node *n, struct handle *h, struct vfs_setattr *s)
{
	struct vfs_attr cur;
	int r = vop_getattr(v, n, h, &cur);
	if (r < 0 || S_ISDIR(cur.mode))
		return r;
	uint32_t mode = s->valid & FATTR_MODE ? s->mode : cur.mode;
	uint32_t kill = S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0);
	if (mode & kill) {
		s->valid |= FATTR_MODE;
		s->mode = mode & ~kill & 07777;
	}
	return 0;
}

int vop_kill_suidgid(struct vfs *v, struct node *n, struct handle *h)
{
	struct vfs_setattr s = { 0 };
	int r = kill_suidgid(v, n, h, &s);
	struct vfs_attr a;
	if (r == 0 && (s.valid & FATTR_MODE) && !synth(n) && !n->m->readonly)
		r = n->m->be->setattr(v, n, h, &s, &a);
	return r;
}

int vop_setattr(struct vfs *v, struct node *n, struct handle *h, const struct vfs_setattr *in,
		struct vfs_attr *a)
{
	if (synth(n) || n->m->readonly)
		return -EROFS;
	struct vfs_setattr sc = *in, *s = &sc;
	if ((s->valid & (FATTR_KILL_SUIDGID | FATTR_UID | FATTR_GID)) && !(s->valid & FATTR_MODE)) {
		int r = kill_suidgid(v, n, h, s);
		if (r < 0)
			return r;
	}
	s->valid &= ~(uint32_t)FATTR_KILL_SUIDGID;
	char path[PATH_MAX];
	/* size: truncate; mode or owner: chmod (the reference has no chown op); times alone are
	 * neither, and pass unannounced */
	enum vfs_op op = s->valid & FATTR_SIZE ? VFS_OP_TRUNCATE
			 : s->valid & (FATTR_MODE | FATTR_UID | FATTR_GID) ? VFS_OP_CHMOD : VFS_OP_COUNT;
	int r = op == VFS_OP_COUNT ? 0 : gate(v, op, n, NULL, path, sizeof(path));
	if (r == 0 && (s->valid & FATTR_SIZE) && (s->valid & (FATTR_MODE | FATTR_UID | FATTR_GID)) &&
	    v->intercept && hooks_blocked(v, VFS_OP_CHMOD, path))
		r = -EPERM;
	if (r == 0) {
		struct handle *o = orphan_handle(v, n, h);
		r = n->m->be->setattr(v, n, h ? h : o, s, a);
		handle_put(v, o);
	}
	if (r == 0 && op != VFS_OP_COUNT)
		event(v, op, path, 0, a);
	return r;
}

int vop_readlink(struct vfs *v, struct node *n, char *buf, size_t size)
{
	if (synth(n))
		return -EINVAL;
	char path[PATH_MAX];
	int r = gate(v, VFS_OP_READLINK, n, NULL, path, sizeof(path));
	if (r == 0)
		r = n->m->be->readlink(v, n, buf, size);
	if (r >= 0)
		event(v, VFS_OP_READLINK, path, 0, NULL);
	return r;
}

int vop_make(struct vfs *v, enum vop_make kind, const struct vfs_cred *c, struct node *dir,
	     const char *name, uint32_t mode, const char *target, bool kref, struct node **out,
	     struct vfs_attr *a)
{
	*out = NULL;
	int r = writable_dir(dir);
	if (r == 0)
		r = pinned_entry(v, dir, name) < 0 ? -EEXIST : 0;
	if (r < 0)
		return r;
	char path[PATH_MAX];
	enum vfs_op op = kind == VOP_MKDIR ? VFS_OP_MKDIR : kind == VOP_SYMLINK ? VFS_OP_SYMLINK : VFS_OP_CREATE;
	if ((r = gate(v, op, dir, name, path, sizeof(path))) < 0)
		return r;
	struct mem_inode *mi = NULL;
	const struct backend *be = dir->m->be;
	if (kind == VOP_MKDIR)
		r = be->mkdir(v, dir, name, mode, c, a, &mi);
	else if (kind == VOP_SYMLINK)
		r = be->symlink(v, dir, name, target, c, a, &mi);
	else
		r = be->mknod(v, dir, name, mode, 0, c, a, &mi);
	if (r == 0 && !(*out = adopt(v, dir, name, mi, kref)))
		r = -ENOMEM;
	if (r == 0)
		event(v, op, path, 0, a);
	return r;
}

int vop_link(struct vfs *v, struct node *src, struct node *dir, const char *name, bool kref,
	     struct node **out, struct vfs_attr *a)
{
	*out = NULL;
	int r = writable_dir(dir);
	if (r == 0 && (synth(src) || src->m != dir->m))
		r = -EXDEV;
	if (r == 0 && src->pinned)
		r = -EPERM;
	if (r == 0)
		r = pinned_entry(v, dir, name) < 0 ? -EEXIST : 0;
	char path[PATH_MAX];
	if (r == 0)
		r = gate(v, VFS_OP_CREATE, dir, name, path, sizeof(path));
	struct mem_inode *mi = NULL;
	if (r == 0)
		r = dir->m->be->link(v, src, dir, name, a, &mi);
	if (r == 0 && !(*out = adopt(v, dir, name, mi, kref)))
		r = -ENOMEM;
	if (r == 0)
		event(v, VFS_OP_CREATE, path, 0, a);
	return r;
}

/* The node the kernel knows as (dir, name), about to lose that name: keep its inode reachable
 * (an open racing an unlink or a rename over must still find the file it resolved). */
static void keep_entry(struct vfs *v, struct node *dir, const char *name)
{
	if (!dir->m || !dir->m->be->keep)
		return;
	vtree_lock(v);
	struct node *n = vtree_child(v, dir, name);
	if (n && !n->pinned && (n->nlookup || n->refs))
		vtree_ref(n);
	else
		n = NULL;
	vtree_unlock(v);
	if (n) {
		dir->m->be->keep(v, n);
		vop_put(v, n);
	}
}

static void detach_entry(struct vfs *v, struct node *dir, const char *name)
{
	vtree_lock(v);
	struct node *n = vtree_child(v, dir, name);
	if (n)
		vtree_detach(v, n);
	vtree_unlock(v);
}

int vop_unlink(struct vfs *v, struct node *dir, const char *name, bool is_dir, bool all)
{
	int r = writable_dir(dir);
	if (r == 0)
		r = pinned_entry(v, dir, name);
	char path[PATH_MAX];
	if (r == 0)
		r = gate(v, all ? VFS_OP_REMOVE_ALL : VFS_OP_REMOVE, dir, name, path, sizeof(path));
	if (r == 0 && !is_dir)
		keep_entry(v, dir, name);
	if (r == 0)
		r = dir->m->be->unlink(v, dir, name, is_dir);
	if (r == 0) {
		detach_entry(v, dir, name);
		if (!all)
			event(v, VFS_OP_REMOVE, path, 0, NULL);
	}
	return r;
}

int vop_rename(struct vfs *v, struct node *odir, const char *oname, struct node *ndir,
	       const char *nname, unsigned flags)
{
	int r = writable_dir(odir);
	if (r == 0)
		r = writable_dir(ndir);
	if (r == 0 && odir->m != ndir->m)
		r = -EXDEV;
	if (r == 0)
		r = pinned_entry(v, odir, oname);
	if (r == 0)
		r = pinned_entry(v, ndir, nname);
	char path[PATH_MAX], npath[PATH_MAX];
	if (r == 0)
		r = gate(v, VFS_OP_RENAME, odir, oname, path, sizeof(path));
	if (r == 0 && v->intercept) {
		gpath(v, ndir, nname, npath, sizeof(npath));
		if (hooks_blocked(v, VFS_OP_RENAME, npath))
			r = -EPERM;
	}
	if (r == 0)
		keep_entry(v, ndir, nname);
	if (r == 0)
		r = odir->m->be->rename(v, odir, oname, ndir, nname, flags);
	if (r < 0)
		return r;
	vtree_lock(v);
	struct node *n = vtree_child(v, odir, oname);
	if (n)
		r = vtree_move(v, n, ndir, nname);
	else if ((n = vtree_child(v, ndir, nname)))
		vtree_detach(v, n);
	vtree_unlock(v);
	event(v, VFS_OP_RENAME, path, 0, NULL);
	return r;
}

int vop_open(struct vfs *v, struct node *n, int flags, uint64_t *fh, struct handle **out)
{
	if (synth(n))
		return -EISDIR;
	if (n->m->readonly && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)))
		return -EROFS;
	char path[PATH_MAX];
	int r = gate(v, (flags & O_CREAT) ? VFS_OP_CREATE : VFS_OP_OPEN, n, NULL, path, sizeof(path));
	if (r < 0)
		return r;
	struct handle *h = handle_new(v, n, fh);
	if (!h)
		return -ENOMEM;
	if ((r = n->m->be->open(v, n, flags, h)) < 0) {
		h = handle_take(v, *fh);
		handle_put(v, h);
		return r;
	}
	event(v, (flags & O_CREAT) ? VFS_OP_CREATE : VFS_OP_OPEN, path, 0, NULL);
	if (out)
		*out = h;
	return 0;
}

int vop_create(struct vfs *v, const struct vfs_cred *c, struct node *dir, const char *name, int flags,
	       uint32_t mode, bool kref, struct node **out, uint64_t *fh, struct vfs_attr *a)
{
	*out = NULL;
	int r = writable_dir(dir);
	if (r == 0)
		r = pinned_entry(v, dir, name) < 0 ? -EEXIST : 0;
	char path[PATH_MAX];
	if (r == 0)
		r = gate(v, VFS_OP_CREATE, dir, name, path, sizeof(path));
	if (r < 0)
		return r;
	/* the handle needs the node first; a failed create lets the fresh node go again */
	struct node *n = adopt(v, dir, name, NULL, false);
	if (!n)
		return -ENOMEM;
	struct handle *h = handle_new(v, n, fh);
	struct mem_inode *mi = NULL;
	r = h ? dir->m->be->create(v, dir, name, flags, mode, c, h, a, &mi) : -ENOMEM;
	if (r < 0) {
		if (h)
			handle_put(v, handle_take(v, *fh));
		vop_put(v, n);
		return r;
	}
	vtree_lock(v);
	if (mi) {
		struct mem_inode *old = n->mi;
		n->mi = mi;
		mi = old;
	}
	if (kref)
		vtree_lookup_ref(n);
	else
		vtree_ref(n);
	vtree_unref(v, n);
	vtree_unlock(v);
	if (mi)
		memfs_inode_unref(v->memfs, mi);
	*out = n;
	event(v, VFS_OP_CREATE, path, 0, a);
	return 0;
}

ssize_t vop_read(struct vfs *v, struct handle *h, void *buf, size_t size, uint64_t off)
{
	char path[PATH_MAX];
	int r = gate(v, VFS_OP_READ, h->node, NULL, path, sizeof(path));
	if (r < 0)
		return r;
	ssize_t n = h->node->m->be->read(v, h, buf, size, off);
	if (n >= 0)
		event(v, VFS_OP_READ, path, (uint64_t)n, NULL);
	return n;
}

ssize_t vop_write(struct vfs *v, struct handle *h, const void *buf, size_t size, uint64_t off)
{
	if (h->node->m->readonly)
		return -EROFS;
	char path[PATH_MAX];
	int r = gate(v, VFS_OP_WRITE, h->node, NULL, path, sizeof(path));
	if (r < 0)
		return r;
	ssize_t n = h->node->m->be->write(v, h, buf, size, off);
	if (n >= 0 && path[0]) {
		struct vfs_attr a;
		bool have = v->events_on && vop_getattr(v, h->node, h, &a) == 0;
		event(v, VFS_OP_WRITE, path, (uint64_t)n, have ? &a : NULL);
	}
	return n;
}

void vop_release(struct vfs *v, uint64_t fh)
{
	struct handle *h = handle_take(v, fh);
	if (!h)
		return;
	if (!h->is_dir && v->events_on) {
		char path[PATH_MAX];
		gpath(v, h->node, NULL, path, sizeof(path));
		event(v, VFS_OP_CLOSE, path, 0, NULL);
	}
	handle_put(v, h);
}

int vop_fsync(struct vfs *v, struct handle *h, bool datasync)
{
	char path[PATH_MAX];
	int r = gate(v, VFS_OP_SYNC, h->node, NULL, path, sizeof(path));
	if (r == 0 && !h->is_dir && h->node->m)
		r = h->node->m->be->fsync(v, h, datasync);
	if (r == 0)
		event(v, VFS_OP_SYNC, path, 0, NULL);
	return r;
}

int vop_opendir(struct vfs *v, struct node *n, uint64_t *fh, struct handle **out)
{
	char path[PATH_MAX];
	int r = gate(v, VFS_OP_READDIR, n, NULL, path, sizeof(path));
	if (r < 0)
		return r;
	struct handle *h = handle_new(v, n, fh);
	if (!h)
		return -ENOMEM;
	h->is_dir = true;
	if (!synth(n) && (r = n->m->be->opendir(v, n, h)) < 0) {
		handle_put(v, handle_take(v, *fh));
		return r;
	}
	event(v, VFS_OP_READDIR, path, 0, NULL);
	if (out)
		*out = h;
	return 0;
}

static int cmp_rec(const void *a, const void *b)
{
	return strcmp(((const struct dirent_rec *)a)->name, ((const struct dirent_rec *)b)->name);
}

/* The listing of an open directory: the storage's entries, with pinned children shown instead of
 * (or beside) them. Taken once per pass (offset 0), so offsets stay stable under changes. */
int vop_list(struct vfs *v, struct handle *h)
{
	for (size_t i = 0; i < h->nents; i++)
		free(h->ents[i].name);
	free(h->ents);
	h->ents = NULL;
	h->nents = 0;
	struct node *n = h->node;
	int r = synth(n) ? 0 : n->m->be->list(v, h);
	if (r < 0)
		return r;
	vtree_lock(v);
	size_t extra = n->nkids;
	struct dirent_rec *e = realloc(h->ents, (h->nents + extra + 1) * sizeof(*e));
	if (!e) {
		vtree_unlock(v);
		return -ENOMEM;
	}
	h->ents = e;
	for (size_t k = 0; k < n->nkids; k++) {
		struct node *kid = n->kids[k];
		size_t i;
		for (i = 0; i < h->nents && strcmp(e[i].name, kid->name); i++)
			;
		if (i == h->nents) {
			if (!(e[i].name = strdup(kid->name)))
				break;
			h->nents++;
		}
		e[i].ino = kid->id | 1ull << 63;
		e[i].type = kid->m && kid->mount_root && kid->m->single_file ? DT_REG : DT_DIR;
	}
	vtree_unlock(v);
	if (extra)
		qsort(h->ents, h->nents, sizeof(*h->ents), cmp_rec);
	h->listed = true;
	return 0;
}

int vop_statfs(struct vfs *v, struct node *n, struct statvfs *st)
{
	if (synth(n)) {
		*st = (struct statvfs){ .f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255 };
		return 0;
	}
	return n->m->be->statfs(v, n, st);
}
