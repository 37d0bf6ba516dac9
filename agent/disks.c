/* agent/disks.c - the extra disks of CONFIG (CFG_DISK: named volumes, --disk files): each is
 * found by its virtio serial and mounted as ext4 at its guest path before READY, read-only when
 * asked (the engine attached it read-only as well). At power-off they are unmounted, so the
 * host's file holds every write and a clean journal: the next VM, even a read-only one, can
 * mount it as it is. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "base/log.h"

static char *mounted[PROTO_MAX_DISKS];
static size_t n_mounted;

/* The host refuses these too; the agent checks again because a path it mounts on must never
 * climb out of where it says (a ".." would mount over something else). */
static bool path_ok(const char *p)
{
	if (p[0] != '/')
		return false;
	for (const char *c = p; *c; c++) {
		if (c[0] != '/' || c[1] != '.')
			continue;
		size_t n = c[2] == '.' ? 3 : 2;
		if (c[n] == '/' || c[n] == '\0')
			return false;
	}
	return strspn(p, "/") != strlen(p);
}

/* Parents before children: /data before /data/cache, whatever order the host sent. */
static int by_length(const void *a, const void *b)
{
	size_t la = strlen((*(const struct proto_disk *const *)a)->path);
	size_t lb = strlen((*(const struct proto_disk *const *)b)->path);
	return la < lb ? -1 : la > lb;
}

/* Why the kernel refused to mount dev: its last log record naming the device ("EXT4-fs (vdc):
 * no journal found"), so the one error line says it without the console's tail. */
static void kernel_reason(const char *dev, char *out, size_t n)
{
	char tag[80], rec[1024];
	const char *base = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
	snprintf(tag, sizeof(tag), "(%s)", base);
	out[0] = '\0';
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	for (int i = 0; fd >= 0 && i < 100000; i++) {
		ssize_t len = read(fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue; /* a record was overwritten while we read: go on with the next */
		if (len <= 0)
			break;
		rec[len] = '\0';
		char *text = strchr(rec, ';');
		if (text && strstr(text, tag))
			snprintf(out, n, "%.*s", (int)strcspn(text + 1, "\n"), text + 1);
	}
	if (fd >= 0)
		close(fd);
}

static int mount_one(const struct proto_disk *d, struct ml_err *e)
{
	if (!path_ok(d->path))
		return ml_err_set(e, -EINVAL, "disk %s: invalid guest mount path \"%s\"", d->serial, d->path);
	char dev[64];
	int r = rootfs_wait_disk(d->serial, dev, sizeof(dev), e);
	if (r < 0)
		return r;
	if ((r = mkdir_p(d->path, 0755)) < 0)
		return ml_err_set(e, r, "disk on %s: create mount point: %s", d->path, strerror(-r));
	bool ro = d->flags & PROTO_DISK_RO;
	if (mount(dev, d->path, "ext4", ro ? MS_RDONLY : 0, NULL) < 0) {
		int err = errno;
		char why[256];
		kernel_reason(dev, why, sizeof(why));
		return ml_err_set(e, -err, "disk on %s: mount ext4%s: %s%s%s%s", d->path, ro ? " read-only" : "",
				  strerror(err), why[0] ? " (" : "", why, why[0] ? ")" : "");
	}
	mounted[n_mounted++] = strdup(d->path);
	ml_info("disk %s (%s) mounted on %s%s", d->serial, dev, d->path, ro ? " read-only" : "");
	return 0;
}

int disks_mount(const struct proto_config *c, struct ml_err *e)
{
	const struct proto_disk *order[PROTO_MAX_DISKS];
	uint32_t n = c->n_disks < PROTO_MAX_DISKS ? c->n_disks : PROTO_MAX_DISKS;
	for (uint32_t i = 0; i < n; i++)
		order[i] = &c->disks[i];
	qsort(order, n, sizeof(order[0]), by_length);
	for (uint32_t i = 0; i < n; i++) {
		int r = mount_one(order[i], e);
		if (r < 0)
			return r;
	}
	return 0;
}

void disks_unmount(void)
{
	while (n_mounted > 0) {
		char *p = mounted[--n_mounted];
		if (p && umount(p) < 0) {
			ml_error("unmount disk on %s: %s", p, strerror(errno));
			/* something still holds it: at least stop writes and flush the journal */
			if (mount(NULL, p, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
				ml_error("remount disk on %s read-only: %s", p, strerror(errno));
		}
		free(p);
	}
}
