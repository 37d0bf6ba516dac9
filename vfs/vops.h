/* vfs/vops.h - the workspace's operations (vops.c), shared by the guest's FUSE requests and the
 * host-side files API. Nodes come back with one reference of the asked kind: the kernel's
 * (kref: a FUSE lookup count, dropped by FORGET) or the caller's (dropped with vop_put). */
#ifndef ML_VFS_VOPS_H
#define ML_VFS_VOPS_H

#include "vfs/internal.h"

enum vop_make { VOP_MKNOD, VOP_MKDIR, VOP_SYMLINK };

void vop_put(struct vfs *v, struct node *n);
/* Attributes without rules or events (internal use: replies, event payloads). */
int vop_getattr(struct vfs *v, struct node *n, struct handle *h, struct vfs_attr *a);
int vop_stat(struct vfs *v, struct node *n, struct handle *h, struct vfs_attr *a);
int vop_lookup(struct vfs *v, struct node *dir, const char *name, bool kref, struct node **out,
	       struct vfs_attr *a);
int vop_setattr(struct vfs *v, struct node *n, struct handle *h, const struct vfs_setattr *s,
		struct vfs_attr *a);
/* Drops set-uid (and set-gid with group execute) from n, as a write or truncate by a caller
 * without CAP_FSETID does (FUSE_WRITE_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID). */
int vop_kill_suidgid(struct vfs *v, struct node *n, struct handle *h);
int vop_readlink(struct vfs *v, struct node *n, char *buf, size_t size);
int vop_make(struct vfs *v, enum vop_make kind, const struct vfs_cred *c, struct node *dir,
	     const char *name, uint32_t mode, const char *target, bool kref, struct node **out,
	     struct vfs_attr *a);
int vop_link(struct vfs *v, struct node *src, struct node *dir, const char *name, bool kref,
	     struct node **out, struct vfs_attr *a);
/* all: part of a remove_all (one event for the whole tree, sent by the caller) */
int vop_unlink(struct vfs *v, struct node *dir, const char *name, bool is_dir, bool all);
int vop_rename(struct vfs *v, struct node *odir, const char *oname, struct node *ndir,
	       const char *nname, unsigned flags);
/* *out (optional) is the handle, valid until vop_release(fh). */
int vop_open(struct vfs *v, struct node *n, int flags, uint64_t *fh, struct handle **out);
int vop_create(struct vfs *v, const struct vfs_cred *c, struct node *dir, const char *name, int flags,
	       uint32_t mode, bool kref, struct node **out, uint64_t *fh, struct vfs_attr *a);
ssize_t vop_read(struct vfs *v, struct handle *h, void *buf, size_t size, uint64_t off);
ssize_t vop_write(struct vfs *v, struct handle *h, const void *buf, size_t size, uint64_t off);
void vop_release(struct vfs *v, uint64_t fh);
int vop_fsync(struct vfs *v, struct handle *h, bool datasync);
int vop_opendir(struct vfs *v, struct node *n, uint64_t *fh, struct handle **out);
/* (Re)takes the listing of an open directory into h->ents. */
int vop_list(struct vfs *v, struct handle *h);
int vop_statfs(struct vfs *v, struct node *n, struct statvfs *st);

#endif
