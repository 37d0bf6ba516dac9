/* disk/copy.c - `volume cp`: a byte copy of a volume that keeps its holes (a 10 GiB volume
 * holding 100 MB copies 100 MB), its permission bits, owner and mtime. A reflink (FICLONE) is
 * tried first: on btrfs or XFS the copy is then instant and shares blocks until written. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/text.h"
#include "base/cleanup.h"
#include "disk/internal.h"

#define CHUNK (8u << 20)

static int copy_range(int in, int out, off_t off, off_t end)
{
	while (off < end) {
		size_t want = (size_t)(end - off) > CHUNK ? CHUNK : (size_t)(end - off);
		off_t src = off, dst = off;
		ssize_t n = copy_file_range(in, &src, out, &dst, want, 0);
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
			static char buf[1 << 16];
			n = pread(in, buf, want < sizeof(buf) ? want : sizeof(buf), off);
			if (n > 0 && pwrite(out, buf, (size_t)n, off) != n)
				return errno ? -errno : -EIO;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the source shrank under us */
		off += n;
	}
	return 0;
}

/* Only the data extents are copied; the holes between them stay holes in the copy. */
static int copy_sparse(int in, int out, off_t size)
{
	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	off_t off = 0;
	while (off < size) {
		off_t data = lseek(in, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return -errno;
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole > size)
			hole = size;
		int r = copy_range(in, out, data, hole);
		if (r < 0)
			return r;
		off = hole;
	}
	return ftruncate(out, size) < 0 ? -errno : 0;
}

/* Owner first: chown clears the set-id bits that chmod then puts back. */
static int copy_meta(int out, const struct stat *st, struct ml_err *e)
{
	if (fchown(out, st->st_uid, st->st_gid) < 0)
		return ml_err_set(e, -errno, "copy named volume: chown: %m");
	if (fchmod(out, st->st_mode & 07777) < 0)
		return ml_err_set(e, -errno, "copy named volume: chmod: %m");
	struct timespec t[2] = { st->st_atim, st->st_mtim };
	if (futimens(out, t) < 0)
		return ml_err_set(e, -errno, "copy named volume: set mtime: %m");
	if (fsync(out) < 0)
		return ml_err_set(e, -errno, "copy named volume: fsync: %m");
	return 0;
}

static int copy_into(int in, const struct stat *st, const char *tmp, struct ml_err *e)
{
	_cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return ml_err_set(e, -errno, "copy named volume: create %s: %m", tmp);
	int r = copy_sparse(in, out, st->st_size);
	if (r < 0)
		return ml_err_set(e, r, "copy named volume: %s", strerror(-r));
	return copy_meta(out, st, e);
}

static void trim_into(const char *s, char *out, size_t n)
{
	size_t len = strlen(s);
	s = ml_trim_span(s, &len);
	snprintf(out, n, "%.*s", (int)len, s);
}

int volume_copy(const char *dir, const char *holders_dir, const char *src, const char *dst,
		struct ml_err *e)
{
	char s[VOLUME_NAME_MAX + 2], d[VOLUME_NAME_MAX + 2];
	trim_into(src, s, sizeof(s));
	trim_into(dst, d, sizeof(d));
	if (!strcmp(s, d))
		return ml_err_set(e, -EINVAL, "copy named volume: source and destination must be different");
	_cleanup_free_ char *sp = NULL;
	int r = volume_find(dir, s, &sp, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *dp = volume_path(dir, d, e);
	if (!dp)
		return e->code;
	struct stat st;
	if (stat(dp, &st) == 0)
		return ml_err_set(e, -EEXIST, "named volume already exists: %s", d);
	_cleanup_close_ int in = open(sp, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (in < 0 || fstat(in, &st) < 0)
		return ml_err_set(e, -errno, "copy named volume: %s: %m", sp);
	if (!S_ISREG(st.st_mode))
		return ml_err_set(e, -EINVAL, "copy named volume: source must be a regular file: %s", sp);
	/* a copy of a filesystem that a VM is writing would be torn: refuse, say who */
	char who[64];
	if ((r = lock_take(in, true, holders_dir, who, sizeof(who))) == -EBUSY)
		return ml_err_set(e, r, "copy named volume: %s is in use by %s", s, who);
	_cleanup_free_ char *tmp = volume_temp_path(dir, d);
	if (!tmp)
		return ml_err_set(e, -ENOMEM, "out of memory");
	volume_sweep_temps(dir);
	if ((r = copy_into(in, &st, tmp, e)) < 0) {
		unlink(tmp);
		return r;
	}
	return volume_publish(dir, tmp, dp, d, e);
}
