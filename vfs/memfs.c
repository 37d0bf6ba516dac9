/* vfs/memfs.c - `memory` mounts: a tree held in the supervisor, gone with the VM. Every byte the
 * guest stores here is supervisor memory, so all of it (file data, names, inodes) is counted
 * against one limit per VM and the guest gets ENOSPC beyond it. One mutex for the whole tree:
 * each operation is a few pointer moves or one memcpy. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "vfs/internal.h"

#define MEMFS_DEFAULT_LIMIT (256ull << 20)
#define INODE_COST 256u   /* what an inode and its bookkeeping cost us, for the limit */

struct mem_dirent {
	char *name;
	struct mem_inode *mi;
	struct mem_dirent *next;
};
struct mem_xattr {
	char *name;
	void *val;
	size_t len;
};
struct mem_inode {
	uint32_t refs;            /* directory entries + nodes */
	uint32_t nlink;
	uint32_t mode, uid, gid, rdev;
	bool owner_default;       /* never chowned: shows the workspace's default owner */
	uint64_t ino;
	struct timespec atime, mtime, ctime;
	uint8_t *data;            /* regular files */
	size_t size, cap;
	struct mem_dirent **buckets; /* directories */
	size_t nbuckets, nents;
	struct mem_inode *parent; /* directories: for the rename loop check */
	char *target;             /* symlinks */
	struct mem_xattr *xattrs;
	size_t nx;
};
struct memfs {
	pthread_mutex_t mu;
	uint64_t used, limit, next_ino;
};

int memfs_new(uint64_t limit, struct memfs **out)
{
	struct memfs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->mu, NULL);
	fs->limit = limit ? limit : MEMFS_DEFAULT_LIMIT;
	fs->next_ino = 2;
	*out = fs;
	return 0;
}

void memfs_free(struct memfs *fs)
{
	if (!fs)
		return;
	pthread_mutex_destroy(&fs->mu);
	free(fs);
}

static void now(struct timespec *ts) { clock_gettime(CLOCK_REALTIME, ts); }

static int charge(struct memfs *fs, uint64_t bytes)
{
	if (bytes > fs->limit - fs->used)
		return -ENOSPC;
	fs->used += bytes;
	return 0;
}
static void refund(struct memfs *fs, uint64_t bytes) { fs->used -= bytes < fs->used ? bytes : fs->used; }

static struct mem_inode *inode_new(struct memfs *fs, uint32_t mode, uint32_t uid, uint32_t gid)
{
	if (charge(fs, INODE_COST) < 0)
		return NULL;
	struct mem_inode *mi = calloc(1, sizeof(*mi));
	if (!mi) {
		refund(fs, INODE_COST);
		return NULL;
	}
	mi->mode = mode;
	mi->uid = uid;
	mi->gid = gid;
	mi->nlink = S_ISDIR(mode) ? 2 : 1;
	mi->ino = fs->next_ino++;
	now(&mi->atime);
	mi->mtime = mi->ctime = mi->atime;
	return mi;
}

static void unref_l(struct memfs *fs, struct mem_inode *mi);

static void inode_destroy(struct memfs *fs, struct mem_inode *mi)
{
	refund(fs, INODE_COST + mi->cap + (mi->target ? strlen(mi->target) : 0));
	for (size_t i = 0; i < mi->nbuckets; i++) {
		for (struct mem_dirent *d = mi->buckets[i], *next; d; d = next) {
			next = d->next;
			refund(fs, strlen(d->name) + sizeof(*d));
			if (S_ISDIR(d->mi->mode))
				d->mi->parent = NULL;
			unref_l(fs, d->mi);
			free(d->name);
			free(d);
		}
	}
	for (size_t i = 0; i < mi->nx; i++) {
		refund(fs, strlen(mi->xattrs[i].name) + mi->xattrs[i].len);
		free(mi->xattrs[i].name);
		free(mi->xattrs[i].val);
	}
	free(mi->xattrs);
	free(mi->buckets);
	free(mi->data);
	free(mi->target);
	free(mi);
}

static void ref_l(struct mem_inode *mi) { mi->refs++; }

static void unref_l(struct memfs *fs, struct mem_inode *mi)
{
	if (mi && --mi->refs == 0)
		inode_destroy(fs, mi);
}

/* From outside memfs (a node let go under the tree lock): takes the memfs lock. */
void memfs_inode_unref(struct memfs *fs, struct mem_inode *mi)
{
	if (!mi)
		return;
	pthread_mutex_lock(&fs->mu);
	unref_l(fs, mi);
	pthread_mutex_unlock(&fs->mu);
}

struct mem_inode *memfs_root(struct memfs *fs, uint32_t mode, uint32_t uid, uint32_t gid)
{
	pthread_mutex_lock(&fs->mu);
	struct mem_inode *mi = inode_new(fs, S_IFDIR | (mode & 07777), uid, gid);
	if (mi) {
		mi->owner_default = true;
		mi->refs = 1; /* the mount's */
	}
	pthread_mutex_unlock(&fs->mu);
	return mi;
}

/* ---- directories ---- */
static size_t hname(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (size_t)h & (n - 1);
}

static struct mem_dirent **dir_slot(struct mem_inode *dir, const char *name)
{
	if (!dir->nbuckets)
		return NULL;
	struct mem_dirent **pp = &dir->buckets[hname(name, dir->nbuckets)];
	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name))
			return pp;
	return NULL;
}

static struct mem_inode *dir_find(struct mem_inode *dir, const char *name)
{
	struct mem_dirent **pp = dir_slot(dir, name);
	return pp ? (*pp)->mi : NULL;
}

static int dir_grow(struct mem_inode *dir)
{
	size_t n = dir->nbuckets ? dir->nbuckets * 2 : 16;
	struct mem_dirent **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < dir->nbuckets; i++) {
		for (struct mem_dirent *d = dir->buckets[i], *next; d; d = next) {
			next = d->next;
			size_t h = hname(d->name, n);
			d->next = b[h];
			b[h] = d;
		}
	}
	free(dir->buckets);
	dir->buckets = b;
	dir->nbuckets = n;
	return 0;
}

static int dir_add(struct memfs *fs, struct mem_inode *dir, const char *name, struct mem_inode *mi)
{
	size_t cost = strlen(name) + sizeof(struct mem_dirent);
	if (charge(fs, cost) < 0)
		return -ENOSPC;
	struct mem_dirent *d = calloc(1, sizeof(*d));
	if (!d || !(d->name = strdup(name)) || (dir->nents + 1 > dir->nbuckets && dir_grow(dir) < 0)) {
		if (d)
			free(d->name);
		free(d);
		refund(fs, cost);
		return -ENOMEM;
	}
	d->mi = mi;
	ref_l(mi);
	size_t h = hname(name, dir->nbuckets);
	d->next = dir->buckets[h];
	dir->buckets[h] = d;
	dir->nents++;
	if (S_ISDIR(mi->mode)) {
		dir->nlink++;
		mi->parent = dir;
	}
	now(&dir->mtime);
	dir->ctime = dir->mtime;
	return 0;
}

static void dir_del(struct memfs *fs, struct mem_inode *dir, struct mem_dirent **pp)
{
	struct mem_dirent *d = *pp;
	*pp = d->next;
	dir->nents--;
	refund(fs, strlen(d->name) + sizeof(*d));
	if (S_ISDIR(d->mi->mode)) {
		dir->nlink--;
		d->mi->parent = NULL;
		d->mi->nlink = 0;
	} else if (d->mi->nlink) {
		d->mi->nlink--;
	}
	now(&dir->mtime);
	dir->ctime = d->mi->ctime = dir->mtime;
	unref_l(fs, d->mi);
	free(d->name);
	free(d);
}

/* ---- attributes ---- */
static void fill_attr(struct vfs *v, struct vmount *m, const struct mem_inode *mi, struct vfs_attr *a)
{
	*a = (struct vfs_attr){
		.ino = mi->ino | m->dev_tag, .size = S_ISREG(mi->mode) ? mi->size
			: S_ISLNK(mi->mode) ? strlen(mi->target) : S_ISDIR(mi->mode) ? 4096 : 0,
		.atime = mi->atime.tv_sec, .mtime = mi->mtime.tv_sec, .ctime = mi->ctime.tv_sec,
		.atimensec = (uint32_t)mi->atime.tv_nsec, .mtimensec = (uint32_t)mi->mtime.tv_nsec,
		.ctimensec = (uint32_t)mi->ctime.tv_nsec, .mode = mi->mode, .nlink = mi->nlink,
		.uid = mi->owner_default ? v->owner_uid : mi->uid,
		.gid = mi->owner_default ? v->owner_gid : mi->gid, .rdev = mi->rdev,
	};
	a->blocks = (mi->cap + 511) / 512;
}

#define LOCKED(fs, expr) ({ pthread_mutex_lock(&(fs)->mu); __typeof__(expr) r_ = (expr); \
			    pthread_mutex_unlock(&(fs)->mu); r_; })

static int m_getattr_l(struct vfs *v, struct node *n, struct vfs_attr *a)
{
	fill_attr(v, n->m, n->mi, a);
	return 0;
}
static int m_getattr(struct vfs *v, struct node *n, struct handle *h, struct vfs_attr *a)
{
	(void)h;
	return LOCKED(v->memfs, m_getattr_l(v, n, a));
}

static int m_lookup_l(struct vfs *v, struct node *dir, const char *name, struct vfs_attr *a,
		      struct mem_inode **out)
{
	if (!S_ISDIR(dir->mi->mode))
		return -ENOTDIR;
	struct mem_inode *mi = dir_find(dir->mi, name);
	if (!mi)
		return -ENOENT;
	ref_l(mi);
	fill_attr(v, dir->m, mi, a);
	*out = mi;
	return 0;
}
static int m_lookup(struct vfs *v, struct node *dir, const char *name, struct vfs_attr *a,
		    struct mem_inode **out)
{
	return LOCKED(v->memfs, m_lookup_l(v, dir, name, a, out));
}

static int resize(struct memfs *fs, struct mem_inode *mi, uint64_t size)
{
	if (size > fs->limit)
		return -ENOSPC;
	if (size > mi->cap) {
		size_t cap = mi->cap ? mi->cap : 4096;
		while (cap < size)
			cap = cap < (64u << 20) ? cap * 2 : cap + (64u << 20);
		/* near the limit, grow to exactly what is needed rather than fail on the slack */
		if (charge(fs, cap - mi->cap) < 0 && charge(fs, (cap = (size_t)size) - mi->cap) < 0)
			return -ENOSPC;
		uint8_t *d = realloc(mi->data, cap);
		if (!d) {
			refund(fs, cap - mi->cap);
			return -ENOMEM;
		}
		memset(d + mi->cap, 0, cap - mi->cap);
		mi->data = d;
		mi->cap = cap;
	}
	if (size < mi->size)
		memset(mi->data + size, 0, mi->size - size);
	mi->size = size;
	return 0;
}

static int m_setattr_l(struct vfs *v, struct node *n, const struct vfs_setattr *s, struct vfs_attr *a)
{
	struct mem_inode *mi = n->mi;
	struct timespec t;
	now(&t);
	if (s->valid & FATTR_SIZE) {
		if (!S_ISREG(mi->mode))
			return S_ISDIR(mi->mode) ? -EISDIR : -EINVAL;
		int r = resize(v->memfs, mi, s->size);
		if (r < 0)
			return r;
		mi->mtime = t;
	}
	if (s->valid & FATTR_MODE)
		mi->mode = (mi->mode & S_IFMT) | (s->mode & 07777);
	if (s->valid & (FATTR_UID | FATTR_GID)) {
		mi->uid = s->valid & FATTR_UID ? s->uid : mi->owner_default ? v->owner_uid : mi->uid;
		mi->gid = s->valid & FATTR_GID ? s->gid : mi->owner_default ? v->owner_gid : mi->gid;
		mi->owner_default = false;
	}
	if (s->valid & FATTR_ATIME)
		mi->atime = s->atime.tv_nsec == UTIME_NOW ? t : s->atime;
	if (s->valid & FATTR_MTIME)
		mi->mtime = s->mtime.tv_nsec == UTIME_NOW ? t : s->mtime;
	mi->ctime = t;
	fill_attr(v, n->m, mi, a);
	return 0;
}
static int m_setattr(struct vfs *v, struct node *n, struct handle *h, const struct vfs_setattr *s,
		     struct vfs_attr *a)
{
	(void)h;
	return LOCKED(v->memfs, m_setattr_l(v, n, s, a));
}

static int m_readlink(struct vfs *v, struct node *n, char *buf, size_t size)
{
	pthread_mutex_lock(&v->memfs->mu);
	int r = -EINVAL;
	if (S_ISLNK(n->mi->mode)) {
		size_t l = strlen(n->mi->target);
		r = l < size ? (int)l : -ENAMETOOLONG;
		if (r >= 0)
			memcpy(buf, n->mi->target, l + 1);
	}
	pthread_mutex_unlock(&v->memfs->mu);
	return r;
}

/* A new inode named name in dir; on success *out holds a reference for the caller's node. */
static int add_new(struct vfs *v, struct node *dir, const char *name, uint32_t mode,
		   const struct vfs_cred *c, const char *target, uint32_t rdev, struct vfs_attr *a,
		   struct mem_inode **out)
{
	struct memfs *fs = v->memfs;
	struct mem_inode *d = dir->mi;
	if (!S_ISDIR(d->mode))
		return -ENOTDIR;
	if (dir_find(d, name))
		return -EEXIST;
	uint32_t gid = d->mode & S_ISGID ? (d->owner_default ? v->owner_gid : d->gid) : c->gid;
	if (S_ISDIR(mode) && (d->mode & S_ISGID))
		mode |= S_ISGID;
	struct mem_inode *mi = inode_new(fs, mode, c->uid, gid);
	if (!mi)
		return -ENOSPC;
	mi->rdev = rdev;
	mi->owner_default = c->uid == v->owner_uid && gid == v->owner_gid;
	if (target && (charge(fs, strlen(target)) < 0 || !(mi->target = strdup(target)))) {
		inode_destroy(fs, mi);
		return -ENOSPC;
	}
	int r = dir_add(fs, d, name, mi);
	if (r < 0) {
		inode_destroy(fs, mi);
		return r;
	}
	ref_l(mi);
	fill_attr(v, dir->m, mi, a);
	*out = mi;
	return 0;
}

static int m_mknod(struct vfs *v, struct node *dir, const char *name, uint32_t mode, uint32_t rdev,
		   const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi)
{
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
		return -EPERM; /* device nodes: not in a workspace */
	(void)rdev;
	return LOCKED(v->memfs, add_new(v, dir, name, mode, c, NULL, 0, a, mi));
}

static int m_mkdir(struct vfs *v, struct node *dir, const char *name, uint32_t mode,
		   const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi)
{
	return LOCKED(v->memfs, add_new(v, dir, name, S_IFDIR | (mode & 07777), c, NULL, 0, a, mi));
}

static int m_symlink(struct vfs *v, struct node *dir, const char *name, const char *target,
		     const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi)
{
	return LOCKED(v->memfs, add_new(v, dir, name, S_IFLNK | 0777, c, target, 0, a, mi));
}

static int m_link_l(struct vfs *v, struct node *src, struct node *dir, const char *name,
		    struct vfs_attr *a, struct mem_inode **out)
{
	if (S_ISDIR(src->mi->mode))
		return -EPERM;
	if (!S_ISDIR(dir->mi->mode))
		return -ENOTDIR;
	if (dir_find(dir->mi, name))
		return -EEXIST;
	int r = dir_add(v->memfs, dir->mi, name, src->mi);
	if (r < 0)
		return r;
	src->mi->nlink++;
	now(&src->mi->ctime);
	ref_l(src->mi);
	fill_attr(v, dir->m, src->mi, a);
	*out = src->mi;
	return 0;
}
static int m_link(struct vfs *v, struct node *src, struct node *dir, const char *name,
		  struct vfs_attr *a, struct mem_inode **mi)
{
	return LOCKED(v->memfs, m_link_l(v, src, dir, name, a, mi));
}

static int m_unlink_l(struct vfs *v, struct node *dir, const char *name, bool is_dir)
{
	struct mem_dirent **pp = dir_slot(dir->mi, name);
	if (!pp)
		return -ENOENT;
	struct mem_inode *mi = (*pp)->mi;
	if (is_dir && !S_ISDIR(mi->mode))
		return -ENOTDIR;
	if (!is_dir && S_ISDIR(mi->mode))
		return -EISDIR;
	if (is_dir && mi->nents)
		return -ENOTEMPTY;
	dir_del(v->memfs, dir->mi, pp);
	return 0;
}
static int m_unlink(struct vfs *v, struct node *dir, const char *name, bool is_dir)
{
	return LOCKED(v->memfs, m_unlink_l(v, dir, name, is_dir));
}

static int m_rename_l(struct vfs *v, struct node *odir, const char *oname, struct node *ndir,
		      const char *nname, unsigned flags)
{
	struct memfs *fs = v->memfs;
	struct mem_dirent **op = dir_slot(odir->mi, oname);
	if (!op)
		return -ENOENT;
	if (!S_ISDIR(ndir->mi->mode))
		return -ENOTDIR;
	struct mem_inode *mi = (*op)->mi;
	/* a directory must not move below itself (the kernel checks; a forged request may not) */
	for (struct mem_inode *p = ndir->mi; p && S_ISDIR(mi->mode); p = p->parent)
		if (p == mi)
			return -EINVAL;
	struct mem_dirent **np = dir_slot(ndir->mi, nname);
	if (np && (*np)->mi == mi)
		return 0;
	if (np && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (np) {
		struct mem_inode *old = (*np)->mi;
		if (S_ISDIR(mi->mode) && !S_ISDIR(old->mode))
			return -ENOTDIR;
		if (!S_ISDIR(mi->mode) && S_ISDIR(old->mode))
			return -EISDIR;
		if (S_ISDIR(old->mode) && old->nents)
			return -ENOTEMPTY;
	}
	ref_l(mi);
	if (np)
		dir_del(fs, ndir->mi, np);
	int r = dir_add(fs, ndir->mi, nname, mi);
	if (r == 0) {
		op = dir_slot(odir->mi, oname); /* the table may have been rebuilt */
		uint32_t nlink = mi->nlink;
		dir_del(fs, odir->mi, op);
		mi->nlink = nlink; /* a move, not an unlink */
		if (S_ISDIR(mi->mode))
			mi->parent = ndir->mi;
	}
	unref_l(fs, mi);
	return r;
}
static int m_rename(struct vfs *v, struct node *odir, const char *oname, struct node *ndir,
		    const char *nname, unsigned flags)
{
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	return LOCKED(v->memfs, m_rename_l(v, odir, oname, ndir, nname, flags));
}

static int m_open_l(struct vfs *v, struct node *n, int flags, struct handle *h)
{
	struct mem_inode *mi = n->mi;
	if (S_ISDIR(mi->mode) && (flags & O_ACCMODE) != O_RDONLY)
		return -EISDIR;
	if (!S_ISREG(mi->mode) && !S_ISDIR(mi->mode))
		return -ENXIO;
	if ((flags & O_TRUNC) && S_ISREG(mi->mode) && (flags & O_ACCMODE) != O_RDONLY) {
		resize(v->memfs, mi, 0);
		now(&mi->mtime);
		mi->ctime = mi->mtime;
	}
	h->mi = mi;
	h->flags = flags;
	return 0;
}
static int m_open(struct vfs *v, struct node *n, int flags, struct handle *h)
{
	return LOCKED(v->memfs, m_open_l(v, n, flags, h));
}

static int m_create(struct vfs *v, struct node *dir, const char *name, int flags, uint32_t mode,
		    const struct vfs_cred *c, struct handle *h, struct vfs_attr *a, struct mem_inode **mi)
{
	pthread_mutex_lock(&v->memfs->mu);
	int r = add_new(v, dir, name, S_IFREG | (mode & 07777), c, NULL, 0, a, mi);
	if (r == 0) {
		h->mi = *mi;
		h->flags = flags;
	}
	pthread_mutex_unlock(&v->memfs->mu);
	return r;
}

static ssize_t m_read_l(struct handle *h, void *buf, size_t size, uint64_t off)
{
	struct mem_inode *mi = h->mi;
	if (off >= mi->size)
		return 0;
	size_t n = mi->size - off < size ? (size_t)(mi->size - off) : size;
	memcpy(buf, mi->data + off, n);
	return (ssize_t)n;
}
static ssize_t m_read(struct vfs *v, struct handle *h, void *buf, size_t size, uint64_t off)
{
	return LOCKED(v->memfs, m_read_l(h, buf, size, off));
}

static ssize_t m_write_l(struct vfs *v, struct handle *h, const void *buf, size_t size, uint64_t off)
{
	struct mem_inode *mi = h->mi;
	if (off + size > mi->size) {
		int r = resize(v->memfs, mi, off + size);
		if (r < 0)
			return r;
	}
	memcpy(mi->data + off, buf, size);
	now(&mi->mtime);
	mi->ctime = mi->mtime;
	return (ssize_t)size;
}
static ssize_t m_write(struct vfs *v, struct handle *h, const void *buf, size_t size, uint64_t off)
{
	return LOCKED(v->memfs, m_write_l(v, h, buf, size, off));
}

static void m_release(struct vfs *v, struct handle *h) { (void)v; h->mi = NULL; }
static int m_fsync(struct vfs *v, struct handle *h, bool datasync) { (void)v; (void)h; (void)datasync; return 0; }

static int m_fallocate_l(struct vfs *v, struct handle *h, int mode, uint64_t off, uint64_t len)
{
	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > h->mi->size)
		return resize(v->memfs, h->mi, off + len);
	return 0;
}
static int m_fallocate(struct vfs *v, struct handle *h, int mode, uint64_t off, uint64_t len)
{
	return LOCKED(v->memfs, m_fallocate_l(v, h, mode, off, len));
}

static int64_t m_lseek(struct vfs *v, struct handle *h, int64_t off, int whence)
{
	pthread_mutex_lock(&v->memfs->mu);
	int64_t size = (int64_t)h->mi->size, r = -EINVAL;
	if (off >= size)
		r = -ENXIO;
	else if (whence == SEEK_DATA)
		r = off;
	else if (whence == SEEK_HOLE)
		r = size;
	pthread_mutex_unlock(&v->memfs->mu);
	return r;
}

static int m_opendir(struct vfs *v, struct node *n, struct handle *h)
{
	(void)v;
	if (!S_ISDIR(n->mi->mode))
		return -ENOTDIR;
	h->mi = n->mi;
	return 0;
}

static int m_list_l(struct vfs *v, struct handle *h)
{
	struct mem_inode *d = h->mi;
	struct dirent_rec *e = calloc(d->nents + 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < d->nbuckets; i++) {
		for (struct mem_dirent *x = d->buckets[i]; x; x = x->next) {
			if (!(e[n].name = strdup(x->name)))
				break;
			e[n].ino = x->mi->ino | h->node->m->dev_tag;
			e[n].type = (x->mi->mode & S_IFMT) >> 12;
			n++;
		}
	}
	(void)v;
	h->ents = e;
	h->nents = n;
	return 0;
}
static int m_list(struct vfs *v, struct handle *h) { return LOCKED(v->memfs, m_list_l(v, h)); }

static int m_statfs(struct vfs *v, struct node *n, struct statvfs *st)
{
	(void)n;
	pthread_mutex_lock(&v->memfs->mu);
	*st = (struct statvfs){ .f_bsize = 4096, .f_frsize = 4096, .f_blocks = v->memfs->limit / 4096,
				.f_bfree = (v->memfs->limit - v->memfs->used) / 4096,
				.f_files = v->memfs->limit / INODE_COST, .f_namemax = 255 };
	st->f_bavail = st->f_bfree;
	st->f_ffree = st->f_favail = (v->memfs->limit - v->memfs->used) / INODE_COST;
	pthread_mutex_unlock(&v->memfs->mu);
	return 0;
}

static struct mem_xattr *xfind(struct mem_inode *mi, const char *name)
{
	for (size_t i = 0; i < mi->nx; i++)
		if (!strcmp(mi->xattrs[i].name, name))
			return &mi->xattrs[i];
	return NULL;
}

static ssize_t m_getxattr_l(struct node *n, const char *name, void *buf, size_t size)
{
	struct mem_xattr *x = xfind(n->mi, name);
	if (!x)
		return -ENODATA;
	if (size == 0)
		return (ssize_t)x->len;
	if (x->len > size)
		return -ERANGE;
	memcpy(buf, x->val, x->len);
	return (ssize_t)x->len;
}
static ssize_t m_getxattr(struct vfs *v, struct node *n, const char *name, void *buf, size_t size)
{
	return LOCKED(v->memfs, m_getxattr_l(n, name, buf, size));
}

static int m_setxattr_l(struct vfs *v, struct node *n, const char *name, const void *val,
			size_t size, int flags)
{
	struct mem_inode *mi = n->mi;
	struct mem_xattr *x = xfind(mi, name);
	if ((flags & XATTR_CREATE) && x)
		return -EEXIST;
	if ((flags & XATTR_REPLACE) && !x)
		return -ENODATA;
	if (charge(v->memfs, strlen(name) + size) < 0)
		return -ENOSPC;
	void *copy = malloc(size ? size : 1);
	if (!copy) {
		refund(v->memfs, strlen(name) + size);
		return -ENOMEM;
	}
	memcpy(copy, val, size);
	if (x) {
		refund(v->memfs, strlen(name) + x->len);
		free(x->val);
	} else {
		struct mem_xattr *nx = realloc(mi->xattrs, (mi->nx + 1) * sizeof(*nx));
		char *nm = nx ? strdup(name) : NULL;
		if (nx)
			mi->xattrs = nx;
		if (!nm) {
			free(copy);
			refund(v->memfs, strlen(name) + size);
			return -ENOMEM;
		}
		x = &mi->xattrs[mi->nx++];
		x->name = nm;
	}
	x->val = copy;
	x->len = size;
	now(&mi->ctime);
	return 0;
}
static int m_setxattr(struct vfs *v, struct node *n, const char *name, const void *val, size_t size,
		      int flags)
{
	return LOCKED(v->memfs, m_setxattr_l(v, n, name, val, size, flags));
}

static ssize_t m_listxattr_l(struct node *n, char *buf, size_t size)
{
	size_t need = 0;
	for (size_t i = 0; i < n->mi->nx; i++)
		need += strlen(n->mi->xattrs[i].name) + 1;
	if (size == 0)
		return (ssize_t)need;
	if (need > size)
		return -ERANGE;
	size_t o = 0;
	for (size_t i = 0; i < n->mi->nx; i++) {
		size_t l = strlen(n->mi->xattrs[i].name) + 1;
		memcpy(buf + o, n->mi->xattrs[i].name, l);
		o += l;
	}
	return (ssize_t)need;
}
static ssize_t m_listxattr(struct vfs *v, struct node *n, char *buf, size_t size)
{
	return LOCKED(v->memfs, m_listxattr_l(n, buf, size));
}

static int m_removexattr_l(struct vfs *v, struct node *n, const char *name)
{
	struct mem_inode *mi = n->mi;
	struct mem_xattr *x = xfind(mi, name);
	if (!x)
		return -ENODATA;
	refund(v->memfs, strlen(x->name) + x->len);
	free(x->name);
	free(x->val);
	*x = mi->xattrs[--mi->nx];
	return 0;
}
static int m_removexattr(struct vfs *v, struct node *n, const char *name)
{
	return LOCKED(v->memfs, m_removexattr_l(v, n, name));
}

const struct backend vfs_memfs = {
	.getattr = m_getattr, .lookup = m_lookup, .setattr = m_setattr, .readlink = m_readlink,
	.mknod = m_mknod, .mkdir = m_mkdir, .symlink = m_symlink, .link = m_link,
	.unlink = m_unlink, .rename = m_rename, .open = m_open, .create = m_create,
	.read = m_read, .write = m_write, .release = m_release, .fsync = m_fsync,
	.fallocate = m_fallocate, .lseek = m_lseek, .opendir = m_opendir, .list = m_list,
	.statfs = m_statfs, .getxattr = m_getxattr, .setxattr = m_setxattr,
	.listxattr = m_listxattr, .removexattr = m_removexattr,
};
