/* disk/lock.c - who uses a disk: an OFD lock on the image file, held by the supervisor that
 * attached it for as long as its VM runs, and a note saying which VM that is.
 *
 * The lock is the truth: the kernel drops it when the holder dies, so a crashed supervisor
 * never leaves a disk locked. The note is only read after a refusal, to name the holder; a
 * stale one is overwritten by the next holder. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "disk/internal.h"
#include "ext4/ext4.h"

#define LOCK_BYTE (INT64_MAX - 1)

static char *note_path(const char *holders_dir, int fd)
{
	struct stat st;
	char *p = NULL;
	if (!holders_dir || fstat(fd, &st) < 0)
		return NULL;
	if (asprintf(&p, "%s/%llx-%llx", holders_dir, (unsigned long long)st.st_dev,
		     (unsigned long long)st.st_ino) < 0)
		return NULL;
	return p;
}

/* The note's text is ours but lives in a user-writable dir: show only an id's characters. */
static void note_read(const char *holders_dir, int fd, char *who, size_t n)
{
	snprintf(who, n, "another sandbox");
	_cleanup_free_ char *p = note_path(holders_dir, fd);
	_cleanup_close_ int nfd = p ? open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) : -1;
	char buf[40];
	ssize_t len = nfd >= 0 ? read(nfd, buf, sizeof(buf) - 1) : -1;
	if (len <= 0)
		return;
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	for (char *c = buf; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return;
	if (buf[0])
		snprintf(who, n, "VM %s", buf);
}

int lock_take(int fd, bool shared, const char *holders_dir, char *who, size_t who_len)
{
	struct flock fl = {
		.l_type = shared ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET, .l_start = LOCK_BYTE, .l_len = 1,
	};
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return -errno;
	note_read(holders_dir, fd, who, who_len);
	return -EBUSY;
}

int lock_probe(int fd, const char *holders_dir, char *who, size_t who_len)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = LOCK_BYTE, .l_len = 1 };
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	if (fl.l_type == F_UNLCK)
		return 0;
	note_read(holders_dir, fd, who, who_len);
	return -EBUSY;
}

void note_write(const char *holders_dir, int fd, const char *holder)
{
	_cleanup_free_ char *p = note_path(holders_dir, fd);
	_cleanup_free_ char *tmp = NULL;
	if (!p || asprintf(&tmp, "%s.tmp-%d", p, (int)getpid()) < 0)
		return;
	_cleanup_close_ int nfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (nfd < 0 || dprintf(nfd, "%s\n", holder) < 0 || rename(tmp, p) < 0) {
		ml_warn("disk holder note %s: %m", p);
		unlink(tmp);
	}
}

void note_clear(const char *holders_dir, int fd, const char *holder)
{
	_cleanup_free_ char *p = note_path(holders_dir, fd);
	char who[64], want[64];
	if (!p)
		return;
	note_read(holders_dir, fd, who, sizeof(who));
	snprintf(want, sizeof(want), "VM %s", holder);
	if (!strcmp(who, want)) /* a reader that came later may have written its own */
		unlink(p);
}

struct disk_lock {
	int fd;
	char *holders_dir, *holder;
};

void disk_unlock(struct disk_lock *l)
{
	if (!l)
		return;
	note_clear(l->holders_dir, l->fd, l->holder);
	close(l->fd); /* drops the OFD lock */
	free(l->holders_dir);
	free(l->holder);
	free(l);
}

static int recheck(const struct disk_spec *d, struct ml_err *e)
{
	struct ext4_probe_info pi;
	int r = ext4_probe(d->host_path, &pi, e);
	if (r < 0)
		return r;
	if (d->readonly && pi.needs_recovery)
		return ml_err_set(e, -EUCLEAN, "disk %s was not unmounted cleanly (its journal needs "
				  "replaying, which a read-only disk cannot do): attach it read-write once "
				  "to repair it", d->host_path);
	if (pi.had_errors)
		ml_warn("disk %s: the guest kernel recorded filesystem errors in it earlier", d->host_path);
	return 0;
}

int disk_lock(const struct disk_spec *d, const char *holders_dir, const char *holder,
	      struct disk_lock **out, struct ml_err *e)
{
	_cleanup_close_ int fd = open(d->host_path, (d->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return ml_err_set(e, -errno, "open disk %s: %m", d->host_path);
	char who[64];
	int r = lock_take(fd, d->readonly, holders_dir, who, sizeof(who));
	if (r == -EBUSY)
		return ml_err_set(e, r, "disk %s is in use by %s", d->host_path, who);
	if (r < 0)
		return ml_err_set(e, r, "lock disk %s: %s", d->host_path, strerror(-r));
	if ((r = recheck(d, e)) < 0)
		return r;
	struct disk_lock *l = calloc(1, sizeof(*l));
	if (!l || !(l->holders_dir = strdup(holders_dir)) || !(l->holder = strdup(holder))) {
		if (l)
			free(l->holders_dir);
		free(l);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	l->fd = steal_fd(&fd);
	note_write(holders_dir, l->fd, holder);
	*out = l;
	return 0;
}
