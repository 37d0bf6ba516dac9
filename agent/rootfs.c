/* agent/rootfs.c - build the guest's root: the image disk (read-only ext4) under an overlay whose
 * writable layer lives on the scratch disk, then switch into it and mount what programs expect.
 *
 * The initramfs is the kernel's rootfs, which cannot be pivot_root'ed away: the new root is
 * moved over "/" and chroot'ed into instead (what switch_root does). */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"

#define DISK_WAIT_MS 10000

/* virtio-blk exposes the -device ...,serial= string; the host names its disks that way. */
static int find_disk(const char *serial, char *dev, size_t size)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/block");
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vd", 2) != 0)
			continue;
		char path[PATH_MAX], val[64];
		snprintf(path, sizeof(path), "/sys/block/%s/serial", de->d_name);
		if (read_small(path, val, sizeof(val)) < 0 || strcmp(val, serial) != 0)
			continue;
		if (snprintf(dev, size, "/dev/%s", de->d_name) >= (int)size)
			return -ENAMETOOLONG;
		return 0;
	}
	return -ENOENT;
}

/* Disks are probed asynchronously after virtio_blk loads, so they may still be on their way. */
int rootfs_wait_disk(const char *serial, char *dev, size_t size, struct ml_err *e)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	for (int waited = 0; waited <= DISK_WAIT_MS; waited += 10) {
		struct stat st;
		if (find_disk(serial, dev, size) == 0 && stat(dev, &st) == 0)
			return 0;
		nanosleep(&tick, NULL);
	}
	return ml_err_set(e, -ENODEV, "no disk with serial \"%s\" (is it attached?)", serial);
}

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		    const char *opts, struct ml_err *e)
{
	int r = mkdir_p(dst, 0755);
	if (r < 0)
		return ml_err_set(e, r, "create mount point %s: %s", dst, strerror(-r));
	if (mount(src, dst, type, flags, opts) < 0)
		return ml_err_set(e, -errno, "mount %s on %s: %s", type ? type : src, dst, strerror(errno));
	return 0;
}

static int mount_overlay(struct ml_err *e)
{
	char rootdev[64], scratchdev[64];
	int r = rootfs_wait_disk("rootfs", rootdev, sizeof(rootdev), e);
	if (r == 0)
		r = rootfs_wait_disk("scratch", scratchdev, sizeof(scratchdev), e);
	/* noload: the image disk is read-only, so ext4 must not try to replay a journal */
	if (r == 0)
		r = do_mount(rootdev, "/.lower", "ext4", MS_RDONLY, "noload", e);
	if (r == 0)
		r = do_mount(scratchdev, "/.scratch", "ext4", MS_NOATIME, NULL, e);
	if (r < 0)
		return r;
	if (mkdir_p("/.scratch/upper", 0755) < 0 || mkdir_p("/.scratch/work", 0755) < 0)
		return ml_err_set(e, -errno, "scratch disk: %s", strerror(errno));
	return do_mount("overlay", "/.newroot", "overlay", 0,
			"lowerdir=/.lower,upperdir=/.scratch/upper,workdir=/.scratch/work", e);
}

static int switch_root(struct ml_err *e)
{
	static const char *const keep[] = { "/dev", "/proc", "/sys" };
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		char dst[64];
		snprintf(dst, sizeof(dst), "/.newroot%s", keep[i]);
		int r = do_mount(keep[i], dst, NULL, MS_MOVE, NULL, e);
		if (r < 0)
			return r;
	}
	if (chdir("/.newroot") < 0)
		return ml_err_set(e, -errno, "chdir new root: %s", strerror(errno));
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		return ml_err_set(e, -errno, "move new root onto /: %s", strerror(errno));
	if (chroot(".") < 0 || chdir("/") < 0)
		return ml_err_set(e, -errno, "chroot into new root: %s", strerror(errno));
	return 0;
}

/* The mounts a container runtime would give a process; the image may lack the directories. */
static int mount_runtime(struct ml_err *e)
{
	static const struct {
		const char *src, *dst, *type;
		unsigned long flags;
		const char *opts;
	} m[] = {
		{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "newinstance,ptmxmode=0666,mode=0620,gid=5" },
		{ "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
		{ "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
		{ "cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		int r = do_mount(m[i].src, m[i].dst, m[i].type, m[i].flags, m[i].opts, e);
		if (r < 0)
			return r;
	}
	/* bash process substitution and many scripts use these; udev would have made them */
	static const char *const links[][2] = {
		{ "/proc/self/fd", "/dev/fd" },     { "/proc/self/fd/0", "/dev/stdin" },
		{ "/proc/self/fd/1", "/dev/stdout" }, { "/proc/self/fd/2", "/dev/stderr" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			ml_warn("symlink %s: %s", links[i][1], strerror(errno));
	if (mkdir_p("/tmp", 01777) == 0)
		chmod("/tmp", 01777);
	return 0;
}

int rootfs_switch(struct ml_err *e)
{
	int r = mount_overlay(e);
	if (r == 0)
		r = switch_root(e);
	if (r == 0)
		r = mount_runtime(e);
	return r;
}
