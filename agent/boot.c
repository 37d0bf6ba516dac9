/* agent/boot.c - PID 1's first steps: kernel filesystems, driver modules, the control port. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"

static void mount_early(const char *type, const char *dir, unsigned long flags)
{
	mkdir(dir, 0755);
	if (mount(type, dir, type, flags, NULL) < 0 && errno != EBUSY)
		ml_error("mount %s on %s: %s", type, dir, strerror(errno));
}

void boot_mount_early(void)
{
	/* DEVTMPFS_MOUNT is not set in the guest kernel: nothing is in /dev until we mount it. */
	mount_early("devtmpfs", "/dev", MS_NOSUID);
	mount_early("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
	mount_early("sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

void boot_std_fds(void)
{
	/* The kernel opens /dev/console as 0/1/2 only if the initramfs has that node. Without
	 * them our own fds would take 0..2 and a child's dup2() onto 0..2 would clobber them. */
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int c = open("/dev/console", O_RDWR | O_NOCTTY);
		if (c < 0)
			c = open("/dev/null", O_RDWR);
		if (c >= 0 && c != fd) {
			dup2(c, fd);
			close(c);
		}
	}
}

static void load_module(const char *dir, const char *name)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ml_error("module %s: %s", path, strerror(errno));
		return;
	}
	/* EEXIST: built into this kernel or already loaded; both are fine */
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
		ml_error("load module %s: %s", name, strerror(errno));
}

void boot_load_modules(const char *order_path, const char *dir)
{
	_cleanup_fclose_ FILE *f = fopen(order_path, "re");
	if (!f) {
		ml_warn("no %s: %s", order_path, strerror(errno));
		return;
	}
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] && line[0] != '#' && !strchr(line, '/'))
			load_module(dir, line);
	}
}

/* /dev/virtio-ports/NAME is made by udev, which we do not have: match the sysfs names. */
static int find_port(const char *name, char *dev, size_t size)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -ENOENT;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[PATH_MAX], val[128];
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
		if (read_small(path, val, sizeof(val)) < 0 || strcmp(val, name) != 0)
			continue;
		if (snprintf(dev, size, "/dev/%s", de->d_name) >= (int)size)
			return -ENAMETOOLONG;
		return 0;
	}
	return -ENOENT;
}

int boot_open_port(const char *name, int timeout_ms, struct ml_err *e)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	char dev[PATH_MAX];
	int r = -ENOENT;
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		r = find_port(name, dev, sizeof(dev));
		if (r == 0) {
			int fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			if (fd >= 0)
				return fd;
			r = -errno; /* the device node may lag behind sysfs */
		}
		nanosleep(&tick, NULL);
	}
	return ml_err_set(e, r, "control port %s not found: %s", name, strerror(-r));
}

/* Every process dies first, so nothing holds the extra disks open when they are unmounted. */
static void kill_everything(void)
{
	kill(-1, SIGKILL); /* every process but PID 1 */
	const struct timespec tick = { 0, 5 * 1000 * 1000 };
	for (int waited = 0; waited < 2000; waited += 5) {
		pid_t p;
		while ((p = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (p < 0) /* ECHILD: all reaped */
			return;
		nanosleep(&tick, NULL);
	}
}

void boot_poweroff(const char *why)
{
	ml_error("powering off: %s", why);
	kill_everything();
	disks_unmount();
	sync();
	reboot(RB_POWER_OFF);
	/* reboot() failed (not PID 1?); exiting PID 1 would panic the kernel, so wait forever */
	for (;;)
		pause();
}
