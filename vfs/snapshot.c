/* vfs/snapshot.c - overlay mounts: a copy of the host path taken at start into the VM's state
 * dir (overlay/mount-NNN), served like a host_fs mount, removed with the VM. The host tree is
 * only ever read. The copy keeps the tree's shape: directories, file data, modes, times,
 * symlinks (copied, never followed), hard links (once per inode), FIFOs and the files' user.*
 * xattrs; sockets and device nodes are skipped.
 *
 * Cost: one pass over the tree. File data is shared, not copied, where the filesystem allows:
 * FICLONE (a reflink: btrfs, XFS) costs no data I/O at all; otherwise copy_file_range() lets the
 * kernel copy in place (and NFS/CIFS copy server-side); plain read/write is the last resort.
 * Each run logs what it did: files, bytes, the method and the time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "vfs/snapshot.h"

#define MAX_DEPTH 256

struct link_rec {
	dev_t dev;
	ino_t ino;
	char *path; /* relative to the snapshot root */
};

struct copy {
	int root;                 /* the snapshot's directory */
	struct snapshot_stats *st;
	struct link_rec *links;
	size_t nlinks, caplinks;
	struct ml_err *e;
	char src[PATH_MAX];       /* the host path being copied, for messages */
	char rel[PATH_MAX];       /* the same, relative to the snapshot root */
};

static int fail(struct copy *c, int err, const char *what)
{
	return ml_err_set(c->e, err, "%s %s: %s", what, c->src, strerror(-err));
}

static void copy_xattrs(int from, int to)
{
	char names[8192], val[65536];
	ssize_t l = flistxattr(from, names, sizeof(names));
	for (ssize_t i = 0; i < l; i += (ssize_t)strlen(names + i) + 1) {
		if (strncmp(names + i, "user.", 5) != 0)
			continue; /* security.* and trusted.* belong to the host, and need privileges */
		ssize_t vl = fgetxattr(from, names + i, val, sizeof(val));
		if (vl >= 0 && fsetxattr(to, names + i, val, (size_t)vl, 0) < 0)
			ml_debug("snapshot: xattr %s not copied: %s", names + i, strerror(errno));
	}
}

static int copy_data(struct copy *c, int in, int out, off_t size)
{
	if (size == 0)
		return 0;
	if (ioctl(out, FICLONE, in) == 0) {
		c->st->reflinked++;
		return 0;
	}
	off_t done = 0;
	while (done < size) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)(size - done), 0);
		if (n <= 0)
			break;
		done += n;
	}
	if (done == size) {
		c->st->ranged++;
		return 0;
	}
	/* EXDEV/EOPNOTSUPP/EINVAL from copy_file_range: read and write what is left */
	char buf[1 << 16];
	if (lseek(in, done, SEEK_SET) < 0 || lseek(out, done, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));
			if (k < 0 && errno != EINTR)
				return -errno;
			w += k > 0 ? k : 0;
		}
	}
	c->st->copied++;
	return 0;
}

static const char *hardlink_of(struct copy *c, const struct stat *st)
{
	for (size_t i = 0; i < c->nlinks; i++)
		if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino)
			return c->links[i].path;
	return NULL;
}

static void remember_link(struct copy *c, const struct stat *st)
{
	if (c->nlinks == c->caplinks) {
		size_t cap = c->caplinks ? c->caplinks * 2 : 64;
		struct link_rec *l = realloc(c->links, cap * sizeof(*l));
		if (!l)
			return; /* the next name of it becomes a copy: nothing is lost */
		c->links = l;
		c->caplinks = cap;
	}
	char *p = strdup(c->rel);
	if (p)
		c->links[c->nlinks++] = (struct link_rec){ st->st_dev, st->st_ino, p };
}

static int copy_file(struct copy *c, int sdir, int ddir, const char *name, const struct stat *st)
{
	const char *prev = st->st_nlink > 1 ? hardlink_of(c, st) : NULL;
	if (prev) {
		if (linkat(c->root, prev, ddir, name, 0) == 0)
			return 0;
		/* fall through: copy it instead */
	}
	_cleanup_close_ int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (in < 0)
		return fail(c, -errno, "open");
	_cleanup_close_ int out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return fail(c, -errno, "create the copy of");
	int r = copy_data(c, in, out, st->st_size);
	if (r < 0)
		return fail(c, r, "copy");
	copy_xattrs(in, out);
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (fchmod(out, (st->st_mode & 0777) | 0600) < 0 || futimens(out, ts) < 0)
		return fail(c, -errno, "set the mode of the copy of");
	c->st->files++;
	c->st->bytes += (uint64_t)st->st_size;
	if (st->st_nlink > 1)
		remember_link(c, st);
	return 0;
}

static int copy_dir(struct copy *c, int sdir, int ddir, int depth);

static int copy_entry(struct copy *c, int sdir, int ddir, const char *name, int depth)
{
	struct stat st;
	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, -errno, "stat");
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	if (S_ISREG(st.st_mode))
		return copy_file(c, sdir, ddir, name, &st);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t l = readlinkat(sdir, name, target, sizeof(target) - 1);
		if (l < 0)
			return fail(c, -errno, "read the symlink");
		target[l] = '\0';
		if (symlinkat(target, ddir, name) < 0)
			return fail(c, -errno, "copy the symlink");
		utimensat(ddir, name, ts, AT_SYMLINK_NOFOLLOW);
		c->st->files++;
		return 0;
	}
	if (S_ISFIFO(st.st_mode)) {
		if (mkfifoat(ddir, name, (st.st_mode & 0777) | 0600) < 0)
			return fail(c, -errno, "copy the FIFO");
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		ml_info("snapshot: skipping %s (a socket or device node)", c->src);
		return 0;
	}
	if (depth >= MAX_DEPTH)
		return ml_err_set(c->e, -ELOOP, "%s: directories nested deeper than %d levels", c->src, MAX_DEPTH);
	_cleanup_close_ int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0)
		return fail(c, -errno, "open");
	if (mkdirat(ddir, name, 0700) < 0)
		return fail(c, -errno, "create the copy of");
	_cleanup_close_ int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return fail(c, -errno, "open the copy of");
	int r = copy_dir(c, s, d, depth + 1);
	if (r < 0)
		return r;
	copy_xattrs(s, d);
	if (fchmod(d, (st.st_mode & 0777) | 0700) < 0 || futimens(d, ts) < 0)
		return fail(c, -errno, "set the mode of the copy of");
	return 0;
}

/* Appends "/name" to a path buffer; returns the old length to cut back to. */
static size_t push(char *buf, const char *name)
{
	size_t l = strlen(buf);
	snprintf(buf + l, PATH_MAX - l, "%s%s", l ? "/" : "", name);
	return l;
}

static int copy_dir(struct copy *c, int sdir, int ddir, int depth)
{
	int fd = dup(sdir);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return fail(c, -errno, "list");
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		size_t sl = push(c->src, de->d_name), rl = push(c->rel, de->d_name);
		r = copy_entry(c, sdir, ddir, de->d_name, depth);
		c->src[sl] = '\0';
		c->rel[rl] = '\0';
	}
	if (r == 0 && errno)
		r = fail(c, -errno, "list");
	closedir(d);
	return r;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int snapshot_take(const char *host_path, const char *dest, struct snapshot_stats *st, struct ml_err *e)
{
	double t0 = now_s();
	*st = (struct snapshot_stats){ 0 };
	struct stat hs;
	if (stat(host_path, &hs) < 0)
		return ml_err_set(e, -errno, "%s: %s", host_path, strerror(errno));
	if (mkdir(dest, 0700) < 0)
		return ml_err_set(e, -errno, "create %s: %s", dest, strerror(errno));
	struct copy c = { .st = st, .e = e };
	c.root = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.root < 0)
		return ml_err_set(e, -errno, "open %s: %s", dest, strerror(errno));
	int r;
	if (S_ISDIR(hs.st_mode)) {
		snprintf(c.src, sizeof(c.src), "%s", host_path);
		/* the user's own path may go through symlinks; what is inside it never does */
		_cleanup_close_ int s = open(host_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = s < 0 ? fail(&c, -errno, "open") : copy_dir(&c, s, c.root, 0);
		if (r == 0) {
			struct timespec ts[2] = { hs.st_atim, hs.st_mtim };
			fchmod(c.root, (hs.st_mode & 0777) | 0700);
			futimens(c.root, ts);
		}
	} else {
		_cleanup_free_ char *dir = strdup(host_path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		if (!slash) {
			r = ml_err_set(e, -EINVAL, "%s: not an absolute path", host_path);
		} else {
			*slash = '\0';
			snprintf(c.src, sizeof(c.src), "%s", host_path);
			snprintf(c.rel, sizeof(c.rel), "%s", slash + 1);
			_cleanup_close_ int s = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			r = s < 0 ? fail(&c, -errno, "open") : copy_entry(&c, s, c.root, slash + 1, 0);
		}
	}
	close(c.root);
	for (size_t i = 0; i < c.nlinks; i++)
		free(c.links[i].path);
	free(c.links);
	st->seconds = now_s() - t0;
	return r;
}

static int rm_at(int dir, const char *name, int depth)
{
	if (unlinkat(dir, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > MAX_DEPTH * 2)
		return -ELOOP;
	int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fchmod(fd, 0700); /* a guest may have left it unwritable */
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int x = rm_at(fd, de->d_name, depth + 1);
		if (x < 0)
			r = x;
	}
	closedir(d);
	return unlinkat(dir, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : r;
}

int snapshot_remove(const char *dest)
{
	return rm_at(AT_FDCWD, dest, 0);
}
