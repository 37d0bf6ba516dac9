/* vfs/hostfs.c - mounts backed by a host directory or file: host_fs (live), ro, and overlay
 * (the same code on a snapshot copy).
 *
 * Confinement. Every host access starts from the mount's directory fd and goes through
 * host_open(): openat2() with RESOLVE_BENEATH (no "..", no absolute path can leave the mount),
 * RESOLVE_NO_SYMLINKS (no symlink is followed anywhere in the path, whoever planted it, guest
 * or host) and O_NOFOLLOW. Paths are rebuilt from the node tree on every call, so a directory
 * the host moved out of the mount is simply not found. Operations that name an entry (mkdirat,
 * unlinkat, renameat2, linkat, symlinkat, mknodat) take the parent from host_open() and a
 * single checked component (vfs_name_check: no '/', not . or ..). Operations on the inode an
 * O_PATH fd holds (chmod, truncate, utimens, xattrs) use its /proc/self/fd path, which names
 * exactly that inode and nothing the guest chose. Nothing here ever follows a guest path with
 * plain open(), stat() or chmod().
 *
 * Ownership as the guest sees it: files carry no guest owner on the host (the supervisor is
 * one unprivileged user), so a file shows the workspace's default owner and its host mode,
 * unless an explicit owner or mode was set from the guest: that is kept in the file's
 * user.matchlock.stat xattr ("uid:gid:mode"), which the guest can neither read nor write.
 * The host mode always keeps the owner's read/write (and search, for directories) so the
 * supervisor can go on serving the file, and never gets set-id bits from the guest. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "vfs/internal.h"

#define PROC_FD_LEN 40

static int host_open(const struct vmount *m, const char *rel, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? (mode & 07777) : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	long fd = syscall(SYS_openat2, m->dirfd, rel, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

static void proc_path(char buf[PROC_FD_LEN], int fd) { snprintf(buf, PROC_FD_LEN, "/proc/self/fd/%d", fd); }

/* The host-relative path of n (and of its entry name), built under the tree lock. */
static int rel_of(struct vfs *v, struct node *n, const char *name, char *buf, size_t size)
{
	vtree_lock(v);
	int r = vtree_relpath(n, buf, size);
	vtree_unlock(v);
	if (r < 0 || !name)
		return r;
	size_t l = strlen(buf);
	if (!strcmp(buf, "."))
		l = 0;
	else if (l + 1 < size)
		buf[l++] = '/';
	if (l + strlen(name) + 1 > size)
		return -ENAMETOOLONG;
	strcpy(buf + l, name);
	return 0;
}

/* A file whose name is gone (kept by h_keep): its inode, opened again through the O_PATH fd we
 * hold. That fd was opened beneath the mount, and names that one inode: nothing else is
 * reachable this way. */
static int reopen_kept(int keep_fd, int flags)
{
	if (flags & O_PATH) {
		int fd = fcntl(keep_fd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	char p[PROC_FD_LEN];
	proc_path(p, keep_fd);
	int fd = open(p, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int open_node(struct vfs *v, struct node *n, const char *name, int flags, mode_t mode)
{
	char rel[PATH_MAX];
	int r = rel_of(v, n, name, rel, sizeof(rel));
	if (r == -ENOENT && !name && n->keep_fd >= 0)
		return reopen_kept(n->keep_fd, flags);
	return r < 0 ? r : host_open(n->m, rel, flags, mode);
}

#define KEPT_MAX 4096

static void h_keep(struct vfs *v, struct node *n)
{
	if (n->keep_fd >= 0 || __atomic_load_n(&v->n_kept, __ATOMIC_RELAXED) >= KEPT_MAX)
		return;
	int fd = open_node(v, n, NULL, O_PATH, 0);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
		vtree_lock(v);
		if (n->keep_fd < 0) {
			n->keep_fd = fd;
			v->n_kept++;
			fd = -1;
		}
		vtree_unlock(v);
	}
	if (fd >= 0)
		close(fd);
}

/* The parent directory of an entry, for the *at() calls. */
static int open_dir(struct vfs *v, struct node *dir)
{
	return open_node(v, dir, NULL, O_PATH | O_DIRECTORY, 0);
}

static bool readonly(const struct node *n) { return n->m->readonly; }

/* ---- guest ownership ---- */
struct gown {
	uint32_t uid, gid, mode; /* mode: 07777 bits */
	bool set;
};

static void gown_read(int fd, mode_t type, struct gown *o)
{
	o->set = false;
	if (!S_ISREG(type) && !S_ISDIR(type))
		return; /* Linux keeps no user xattrs on symlinks or special files */
	char p[PROC_FD_LEN], val[64];
	proc_path(p, fd);
	ssize_t n = getxattr(p, VFS_OWNER_XATTR, val, sizeof(val) - 1);
	if (n <= 0)
		return;
	val[n] = '\0';
	unsigned u, g, m;
	if (sscanf(val, "%u:%u:%o", &u, &g, &m) == 3 && m <= 07777)
		*o = (struct gown){ u, g, m, true };
}

static uint32_t host_perm(uint32_t gmode, bool dir) { return (gmode & 0777) | (dir ? 0700 : 0600); }

/* Keeps o on the file: the xattr when it differs from what the host shows by itself. */
static int gown_write(struct vfs *v, int fd, mode_t type, const struct gown *o, mode_t host_mode)
{
	char p[PROC_FD_LEN];
	proc_path(p, fd);
	bool plain = o->uid == v->owner_uid && o->gid == v->owner_gid && (o->mode & 07777) == (host_mode & 07777);
	if (!S_ISREG(type) && !S_ISDIR(type))
		return plain ? 0 : -EPERM;
	if (plain) {
		if (removexattr(p, VFS_OWNER_XATTR) < 0 && errno != ENODATA && errno != ENOTSUP)
			return -errno;
		return 0;
	}
	char val[64];
	int l = snprintf(val, sizeof(val), "%u:%u:%04o", o->uid, o->gid, o->mode & 07777);
	if (setxattr(p, VFS_OWNER_XATTR, val, (size_t)l, 0) < 0)
		return errno == ENOTSUP ? -EPERM : -errno;
	return 0;
}

void attr_from_stat(struct vfs *v, struct vfs_attr *a, const struct stat *st)
{
	/* (st_dev, st_ino) must stay unique across mounts on different host filesystems: tar and
	 * cp -a take equal inode numbers for hard links. The first host filesystem keeps its own
	 * numbers; another one's get its device mixed into the high bits. */
	uint64_t dev = st->st_dev == v->host_dev ? 0 : (uint64_t)st->st_dev * 0x9e3779b97f4a7c15ull;
	*a = (struct vfs_attr){
		.ino = (uint64_t)st->st_ino ^ (dev & 0xffff000000000000ull), .size = (uint64_t)st->st_size,
		.blocks = (uint64_t)st->st_blocks, .atime = st->st_atim.tv_sec, .mtime = st->st_mtim.tv_sec,
		.ctime = st->st_ctim.tv_sec, .atimensec = (uint32_t)st->st_atim.tv_nsec,
		.mtimensec = (uint32_t)st->st_mtim.tv_nsec, .ctimensec = (uint32_t)st->st_ctim.tv_nsec,
		.mode = st->st_mode, .nlink = (uint32_t)st->st_nlink, .uid = v->owner_uid,
		.gid = v->owner_gid, .rdev = 0,
	};
}

static int stat_fd(struct vfs *v, int fd, struct vfs_attr *a)
{
	struct stat st;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	attr_from_stat(v, a, &st);
	struct gown o;
	gown_read(fd, st.st_mode, &o);
	if (o.set) {
		a->uid = o.uid;
		a->gid = o.gid;
		a->mode = (st.st_mode & S_IFMT) | o.mode;
	}
	return 0;
}

static int h_getattr(struct vfs *v, struct node *n, struct handle *h, struct vfs_attr *a)
{
	if (h && h->fd >= 0)
		return stat_fd(v, h->fd, a);
	_cleanup_close_ int fd = open_node(v, n, NULL, O_PATH, 0);
	return fd < 0 ? fd : stat_fd(v, fd, a);
}

static int h_lookup(struct vfs *v, struct node *dir, const char *name, struct vfs_attr *a,
		    struct mem_inode **mi)
{
	(void)mi;
	_cleanup_close_ int fd = open_node(v, dir, name, O_PATH, 0);
	return fd < 0 ? fd : stat_fd(v, fd, a);
}

static int set_times(int fd, const struct vfs_setattr *s)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
	if (s->valid & FATTR_ATIME)
		ts[0] = s->atime;
	if (s->valid & FATTR_MTIME)
		ts[1] = s->mtime;
	char p[PROC_FD_LEN];
	proc_path(p, fd);
	return utimensat(AT_FDCWD, p, ts, 0) < 0 ? -errno : 0;
}

/* chmod/chown as the guest sees them: host mode with the supervisor's floor, the rest kept in
 * the xattr. */
static int set_owner_mode(struct vfs *v, int fd, const struct vfs_setattr *s)
{
	struct stat st;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return 0; /* a symlink's owner and mode mean nothing to the kernel: accept, keep none */
	struct gown o;
	gown_read(fd, st.st_mode, &o);
	if (!o.set)
		o = (struct gown){ v->owner_uid, v->owner_gid, st.st_mode & 07777, true };
	if (s->valid & FATTR_MODE)
		o.mode = s->mode & 07777;
	if (s->valid & FATTR_UID)
		o.uid = s->uid;
	if (s->valid & FATTR_GID)
		o.gid = s->gid;
	char p[PROC_FD_LEN];
	proc_path(p, fd);
	mode_t hm = host_perm(o.mode, S_ISDIR(st.st_mode));
	if ((st.st_mode & 07777) != hm && chmod(p, hm) < 0)
		return -errno;
	return gown_write(v, fd, st.st_mode, &o, hm);
}

static int h_setattr(struct vfs *v, struct node *n, struct handle *h, const struct vfs_setattr *s,
		     struct vfs_attr *a)
{
	if (readonly(n))
		return -EROFS;
	_cleanup_close_ int own = -1;
	int fd = h && h->fd >= 0 ? h->fd : (own = open_node(v, n, NULL, O_PATH, 0));
	if (fd < 0)
		return fd;
	char p[PROC_FD_LEN];
	proc_path(p, fd);
	if (s->valid & FATTR_SIZE) {
		int r = h && (h->flags & O_ACCMODE) != O_RDONLY ? ftruncate(fd, (off_t)s->size) : truncate(p, (off_t)s->size);
		if (r < 0)
			return -errno;
	}
	if (s->valid & (FATTR_MODE | FATTR_UID | FATTR_GID)) {
		int r = set_owner_mode(v, fd, s);
		if (r < 0)
			return r;
	}
	if (s->valid & (FATTR_ATIME | FATTR_MTIME)) {
		struct stat st;
		if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode)) {
			int r = set_times(fd, s);
			if (r < 0)
				return r;
		}
	}
	return stat_fd(v, fd, a);
}

static int h_readlink(struct vfs *v, struct node *n, char *buf, size_t size)
{
	_cleanup_close_ int fd = open_node(v, n, NULL, O_PATH, 0);
	if (fd < 0)
		return fd;
	ssize_t l = readlinkat(fd, "", buf, size);
	if (l < 0)
		return -errno;
	if ((size_t)l >= size)
		return -ENAMETOOLONG;
	buf[l] = '\0';
	return (int)l;
}

/* After making an entry: its owner and mode as the guest asked, then its attributes. */
static int finish_new(struct vfs *v, int pfd, const char *name, uint32_t gmode, const struct vfs_cred *c,
		      struct vfs_attr *a)
{
	_cleanup_close_ int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	struct gown o = { c->uid, c->gid, gmode & 07777, true };
	if (gown_write(v, fd, st.st_mode, &o, st.st_mode) < 0 && !S_ISLNK(st.st_mode))
		ml_debug("vfs: keeping the guest owner of %s failed", name);
	return stat_fd(v, fd, a);
}

/* The gid a new entry gets: a set-group-ID directory passes its own on. */
static uint32_t new_gid(struct vfs *v, int pfd, const struct vfs_cred *c, bool *sgid)
{
	struct vfs_attr da;
	*sgid = false;
	if (stat_fd(v, pfd, &da) == 0 && (da.mode & S_ISGID)) {
		*sgid = true;
		return da.gid;
	}
	return c->gid;
}

static int h_mknod(struct vfs *v, struct node *dir, const char *name, uint32_t mode, uint32_t rdev,
		   const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi)
{
	(void)mi;
	(void)rdev;
	if (readonly(dir))
		return -EROFS;
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
		return -EPERM; /* device nodes: an unprivileged supervisor cannot, and should not */
	_cleanup_close_ int pfd = open_dir(v, dir);
	if (pfd < 0)
		return pfd;
	bool sgid;
	struct vfs_cred cc = { c->uid, new_gid(v, pfd, c, &sgid) };
	if (mknodat(pfd, name, (mode & S_IFMT) | host_perm(mode, false), 0) < 0)
		return -errno;
	return finish_new(v, pfd, name, mode, &cc, a);
}

static int h_mkdir(struct vfs *v, struct node *dir, const char *name, uint32_t mode,
		   const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi)
{
	(void)mi;
	if (readonly(dir))
		return -EROFS;
	_cleanup_close_ int pfd = open_dir(v, dir);
	if (pfd < 0)
		return pfd;
	bool sgid;
	struct vfs_cred cc = { c->uid, new_gid(v, pfd, c, &sgid) };
	if (sgid)
		mode |= S_ISGID;
	if (mkdirat(pfd, name, host_perm(mode, true)) < 0)
		return -errno;
	return finish_new(v, pfd, name, mode, &cc, a);
}

static int h_symlink(struct vfs *v, struct node *dir, const char *name, const char *target,
		     const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi)
{
	(void)mi;
	(void)c;
	if (readonly(dir))
		return -EROFS;
	_cleanup_close_ int pfd = open_dir(v, dir);
	if (pfd < 0)
		return pfd;
	/* the target is stored, never followed by us: the guest kernel resolves it in the guest */
	if (symlinkat(target, pfd, name) < 0)
		return -errno;
	_cleanup_close_ int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : stat_fd(v, fd, a);
}

static int h_link(struct vfs *v, struct node *src, struct node *dir, const char *name,
		  struct vfs_attr *a, struct mem_inode **mi)
{
	(void)mi;
	if (readonly(dir))
		return -EROFS;
	vtree_lock(v);
	struct node *sp = src->parent;
	bool ok = sp && !src->mount_root && sp->m == src->m;
	char sname[NAME_MAX + 1];
	if (ok)
		snprintf(sname, sizeof(sname), "%s", src->name);
	if (ok)
		vtree_ref(sp);
	vtree_unlock(v);
	if (!ok)
		return src->mount_root ? -EPERM : -ENOENT;
	int spfd = open_dir(v, sp);
	vtree_lock(v);
	vtree_unref(v, sp);
	vtree_unlock(v);
	if (spfd < 0)
		return spfd;
	_cleanup_close_ int sfd = spfd;
	_cleanup_close_ int pfd = open_dir(v, dir);
	if (pfd < 0)
		return pfd;
	if (linkat(sfd, sname, pfd, name, 0) < 0)
		return -errno;
	_cleanup_close_ int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : stat_fd(v, fd, a);
}

static int h_unlink(struct vfs *v, struct node *dir, const char *name, bool is_dir)
{
	if (readonly(dir))
		return -EROFS;
	_cleanup_close_ int pfd = open_dir(v, dir);
	if (pfd < 0)
		return pfd;
	return unlinkat(pfd, name, is_dir ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
}

static int h_rename(struct vfs *v, struct node *odir, const char *oname, struct node *ndir,
		    const char *nname, unsigned flags)
{
	if (readonly(odir) || readonly(ndir))
		return -EROFS;
	_cleanup_close_ int ofd = open_dir(v, odir);
	if (ofd < 0)
		return ofd;
	_cleanup_close_ int nfd = open_dir(v, ndir);
	if (nfd < 0)
		return nfd;
	return renameat2(ofd, oname, nfd, nname, flags) < 0 ? -errno : 0;
}

/* What of the guest's open flags reaches the host: access mode, truncation, sync. Appends are
 * placed by the guest kernel (it sends the offset), so O_APPEND stays in the guest. */
static int host_flags(int flags)
{
	return (flags & (O_ACCMODE | O_TRUNC | O_SYNC | O_DSYNC)) | O_NONBLOCK;
}

static int check_regular(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* O_NONBLOCK above means a FIFO the host swapped in cannot hang a worker; it is refused */
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -ENXIO;
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ? -errno : 0;
}

static int h_open(struct vfs *v, struct node *n, int flags, struct handle *h)
{
	if (readonly(n) && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)))
		return -EROFS;
	int fd = open_node(v, n, NULL, host_flags(flags), 0);
	if (fd < 0)
		return fd;
	int r = check_regular(fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	h->fd = fd;
	h->flags = flags;
	return 0;
}

static int h_create(struct vfs *v, struct node *dir, const char *name, int flags, uint32_t mode,
		    const struct vfs_cred *c, struct handle *h, struct vfs_attr *a, struct mem_inode **mi)
{
	(void)mi;
	if (readonly(dir))
		return -EROFS;
	_cleanup_close_ int pfd = open_dir(v, dir);
	if (pfd < 0)
		return pfd;
	bool sgid;
	struct vfs_cred cc = { c->uid, new_gid(v, pfd, c, &sgid) };
	/* O_EXCL on the host even when the guest did not ask: a file that appeared meanwhile is
	 * opened as it is, and keeps its owner */
	int fd = open_node(v, dir, name, host_flags(flags) | O_CREAT | O_EXCL, host_perm(mode, false));
	bool made = fd >= 0;
	if (fd == -EEXIST && !(flags & O_EXCL))
		fd = open_node(v, dir, name, host_flags(flags), 0);
	if (fd < 0)
		return fd;
	int r = check_regular(fd);
	if (r == 0)
		r = made ? finish_new(v, pfd, name, S_IFREG | (mode & 07777), &cc, a) : stat_fd(v, fd, a);
	if (r < 0) {
		close(fd);
		return r;
	}
	h->fd = fd;
	h->flags = flags;
	return 0;
}

static ssize_t h_read(struct vfs *v, struct handle *h, void *buf, size_t size, uint64_t off)
{
	(void)v;
	ssize_t n = pread(h->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

static ssize_t h_write(struct vfs *v, struct handle *h, const void *buf, size_t size, uint64_t off)
{
	(void)v;
	if (h->node->m->readonly)
		return -EROFS;
	ssize_t n = pwrite(h->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

static void h_release(struct vfs *v, struct handle *h)
{
	(void)v;
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

static int h_fsync(struct vfs *v, struct handle *h, bool datasync)
{
	(void)v;
	return (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
}

static int h_fallocate(struct vfs *v, struct handle *h, int mode, uint64_t off, uint64_t len)
{
	(void)v;
	if (h->node->m->readonly)
		return -EROFS;
	return fallocate(h->fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
}

static int64_t h_lseek(struct vfs *v, struct handle *h, int64_t off, int whence)
{
	(void)v;
	off_t r = lseek(h->fd, (off_t)off, whence);
	return r < 0 ? -errno : (int64_t)r;
}

static int h_opendir(struct vfs *v, struct node *n, struct handle *h)
{
	int fd = open_node(v, n, NULL, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
	if (fd < 0)
		return fd;
	h->fd = fd;
	return 0;
}

static int h_list(struct vfs *v, struct handle *h)
{
	(void)v;
	if (lseek(h->fd, 0, SEEK_SET) < 0)
		return -errno;
	size_t cap = 64, n = 0;
	struct dirent_rec *e = calloc(cap, sizeof(*e));
	char buf[32768];
	long got;
	int r = 0;
	while (e && (got = syscall(SYS_getdents64, h->fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
				continue;
			if (n == cap) {
				struct dirent_rec *ne = realloc(e, cap * 2 * sizeof(*e));
				if (!ne) {
					r = -ENOMEM;
					goto out;
				}
				e = ne;
				cap *= 2;
			}
			if (!(e[n].name = strdup(d->d_name))) {
				r = -ENOMEM;
				goto out;
			}
			e[n].ino = d->d_ino;
			e[n].type = d->d_type;
			n++;
		}
	}
	if (!e)
		return -ENOMEM;
	if (got < 0)
		r = -errno;
out:
	h->ents = e;
	h->nents = n;
	return r;
}

static int h_statfs(struct vfs *v, struct node *n, struct statvfs *st)
{
	(void)v;
	return fstatvfs(n->m->dirfd, st) < 0 ? -errno : 0;
}

/* The guest sees and changes every xattr of its files but the one that holds its ownership. */
static bool xattr_ours(const char *name) { return !strcmp(name, VFS_OWNER_XATTR); }

static int open_for_xattr(struct vfs *v, struct node *n, char p[PROC_FD_LEN])
{
	int fd = open_node(v, n, NULL, O_PATH, 0);
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
		close(fd);
		return -ENOTSUP;
	}
	proc_path(p, fd);
	return fd;
}

static ssize_t h_getxattr(struct vfs *v, struct node *n, const char *name, void *buf, size_t size)
{
	/* The guest kernel asks for security.capability before every write and chown. A host
	 * file's capabilities are the host's, never granted in the guest (and an unprivileged
	 * supervisor cannot have set any): answered without touching the host. */
	if (xattr_ours(name) || !strcmp(name, "security.capability"))
		return -ENODATA;
	char p[PROC_FD_LEN];
	_cleanup_close_ int fd = open_for_xattr(v, n, p);
	if (fd < 0)
		return fd == -ENOTSUP ? -ENODATA : fd;
	ssize_t r = getxattr(p, name, buf, size);
	return r < 0 ? -errno : r;
}

static int h_setxattr(struct vfs *v, struct node *n, const char *name, const void *val, size_t size,
		      int flags)
{
	if (readonly(n))
		return -EROFS;
	if (xattr_ours(name) || !strcmp(name, "security.capability"))
		return -EPERM;
	char p[PROC_FD_LEN];
	_cleanup_close_ int fd = open_for_xattr(v, n, p);
	if (fd < 0)
		return fd;
	return setxattr(p, name, val, size, flags) < 0 ? -errno : 0;
}

static ssize_t h_listxattr(struct vfs *v, struct node *n, char *buf, size_t size)
{
	char p[PROC_FD_LEN];
	_cleanup_close_ int fd = open_for_xattr(v, n, p);
	if (fd < 0)
		return fd == -ENOTSUP ? 0 : fd;
	char tmp[65536];
	ssize_t l = listxattr(p, tmp, sizeof(tmp));
	if (l < 0)
		return -errno;
	size_t o = 0;
	for (ssize_t i = 0; i < l;) {
		size_t nl = strlen(tmp + i) + 1;
		if (!xattr_ours(tmp + i)) {
			if (size && o + nl > size)
				return -ERANGE;
			if (size)
				memcpy(buf + o, tmp + i, nl);
			o += nl;
		}
		i += (ssize_t)nl;
	}
	return (ssize_t)o;
}

static int h_removexattr(struct vfs *v, struct node *n, const char *name)
{
	if (readonly(n))
		return -EROFS;
	if (xattr_ours(name))
		return -ENODATA;
	char p[PROC_FD_LEN];
	_cleanup_close_ int fd = open_for_xattr(v, n, p);
	if (fd < 0)
		return fd;
	return removexattr(p, name) < 0 ? -errno : 0;
}

int hostfs_open_root(struct vmount *m, const char *host_path, struct ml_err *e)
{
	struct stat st;
	if (stat(host_path, &st) < 0)
		return ml_err_set(e, -errno, "host path %s: %s", host_path, strerror(errno));
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return ml_err_set(e, -EINVAL, "host path %s is neither a directory nor a regular file", host_path);
	if (access(host_path, S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK) < 0)
		return ml_err_set(e, -errno, "host path %s cannot be read: %s", host_path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		m->dirfd = open(host_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		_cleanup_free_ char *dir = strdup(host_path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		if (!slash || !(m->base = strdup(slash + 1)))
			return ml_err_set(e, -ENOMEM, "out of memory");
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		m->single_file = true;
		m->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (m->dirfd < 0)
		return ml_err_set(e, -errno, "open host path %s: %s", host_path, strerror(errno));
	m->be = &vfs_hostfs;
	m->dev = st.st_dev;
	return 0;
}

const struct backend vfs_hostfs = {
	.getattr = h_getattr, .lookup = h_lookup, .setattr = h_setattr, .readlink = h_readlink,
	.mknod = h_mknod, .mkdir = h_mkdir, .symlink = h_symlink, .link = h_link,
	.unlink = h_unlink, .rename = h_rename, .open = h_open, .create = h_create,
	.read = h_read, .write = h_write, .release = h_release, .fsync = h_fsync,
	.fallocate = h_fallocate, .lseek = h_lseek, .opendir = h_opendir, .list = h_list,
	.statfs = h_statfs, .getxattr = h_getxattr, .setxattr = h_setxattr,
	.listxattr = h_listxattr, .removexattr = h_removexattr, .keep = h_keep,
};
