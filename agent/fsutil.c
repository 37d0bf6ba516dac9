/* agent/fsutil.c - small file helpers shared by the boot, rootfs and config steps. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"

int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		if (c == '\0')
			return 0;
		*p = c;
	}
}

int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int write_existing(const char *path, const char *s, struct ml_err *e)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_set(e, -errno, "open %s: %s", path, strerror(errno));
	int r = write_all(fd, s, strlen(s));
	if (r < 0)
		return ml_err_set(e, r, "write %s: %s", path, strerror(-r));
	return 0;
}

int replace_file(const char *path, const char *s, mode_t mode, struct ml_err *e)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.ml-tmp", path) >= (int)sizeof(tmp))
		return ml_err_set(e, -ENAMETOOLONG, "path too long: %s", path);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return ml_err_set(e, -errno, "create %s: %s", tmp, strerror(errno));
	int r = write_all(fd, s, strlen(s));
	if (close(fd) < 0 && r == 0)
		r = -errno;
	/* rename replaces a symlink itself (images often link resolv.conf elsewhere) */
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return ml_err_set(e, r, "write %s: %s", path, strerror(-r));
	}
	return 0;
}

ssize_t read_small(const char *path, char *buf, size_t size)
{
	/* O_NONBLOCK: a FIFO planted by a guest process must not hang PID 1 */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || size == 0)
		return -errno;
	ssize_t n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\0'))
		n--;
	buf[n] = '\0';
	return n;
}
