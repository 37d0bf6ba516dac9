/* rpc/disks.c - a sandbox's extra disks, from specs to locked drives and back. The lock is
 * taken before anything expensive (pull, rootfs, boot) and held by this process until the
 * engine has exited, so a second sandbox can never have the same disk open for writing. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "rpc/disks.h"
#include "rpc/sandbox.h"

struct sandbox_disks {
	size_t n;
	struct disk_lock *locks[DISK_MAX_EXTRA];
	struct vmm_drive drives[DISK_MAX_EXTRA];
	char serials[DISK_MAX_EXTRA][8];
	const char *mounts[DISK_MAX_EXTRA];
	bool writable;
};

int sandbox_disks_attach(const struct disk_spec *d, size_t n, const char *vm_id, const char *holders,
			 struct sandbox_disks **out, struct ml_err *e)
{
	int r = disk_specs_check_set(d, n, e);
	if (r < 0)
		return r;
	struct sandbox_disks *s = calloc(1, sizeof(*s));
	if (!s) {
		free(s);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (n && (r = ml_mkdir_p(holders, 0700)) < 0) {
		free(s);
		return ml_err_set(e, r, "creating %s: %s", holders, strerror(-r));
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		r = disk_lock(&d[i], holders, vm_id, &s->locks[i], e);
		if (r < 0)
			break;
		snprintf(s->serials[i], sizeof(s->serials[i]), "disk%zu", i);
		s->drives[i] = (struct vmm_drive){ d[i].host_path, s->serials[i], d[i].readonly };
		s->mounts[i] = d[i].guest_mount;
		s->writable |= !d[i].readonly;
		s->n = i + 1;
	}
	if (r < 0) {
		sandbox_disks_release(s);
		return r;
	}
	*out = s;
	return 0;
}

const struct vmm_drive *sandbox_disks_drives(const struct sandbox_disks *s, size_t *n)
{
	*n = s ? s->n : 0;
	return s ? s->drives : NULL;
}

int sandbox_disks_config(const struct sandbox_disks *s, struct proto_config *cfg, struct ml_err *e)
{
	for (size_t i = 0; s && i < s->n; i++) {
		int r = proto_config_add_disk(cfg, s->serials[i], s->mounts[i],
					      s->drives[i].readonly ? PROTO_DISK_RO : 0);
		if (r < 0)
			return ml_err_set(e, r, "disk on %s: %s", s->mounts[i], strerror(-r));
	}
	return 0;
}

bool sandbox_disks_writable(const struct sandbox_disks *s) { return s && s->writable; }

void sandbox_disks_release(struct sandbox_disks *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < DISK_MAX_EXTRA; i++)
		disk_unlock(s->locks[i]);
	free(s);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sandbox_guest_poweroff(struct ctl *ctl, struct vmm *vm, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	if (!ctl || !vm || ctl_shutdown(ctl) < 0)
		return -EPIPE;
	/* the frame must leave before we wait: nobody else drives the channel now */
	while (ctl_wants_write(ctl)) {
		int64_t left = deadline - now_ms();
		struct pollfd p = { .fd = vmm_ctl_fd(vm), .events = POLLOUT };
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) > 0 && ctl_on_writable(ctl) < 0)
			return -EPIPE;
	}
	int64_t left = deadline - now_ms();
	int r = vmm_wait_exit(vm, left > 0 ? (int)left : 0);
	if (r == 0)
		ml_info("guest powered off in %lld ms", (long long)(now_ms() - (deadline - timeout_ms)));
	else
		ml_warn("the guest did not power off within %d ms; killing it (its disks' journals will "
			"be replayed at their next mount)", timeout_ms);
	return r;
}
