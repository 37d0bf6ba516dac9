/* cli/log.c - `matchlock log [-f] <id>`: the VM's log (console, the run command's output, the
 * launched entrypoint's output). -f follows appends, starting over when the file is truncated
 * (a new boot), until SIGINT/SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/proc.h"
#include "base/cleanup.h"
#include "base/io.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "rpc/vmstate.h"

#define FOLLOW_POLL_MS 100

/* Copies what the file has past *off; 0, or -1 if stdout is gone. */
static int copy_new(const char *path, off_t *off)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	if (st.st_size < *off)
		*off = 0;
	char buf[64 * 1024];
	ssize_t n;
	while ((n = pread(fd, buf, sizeof(buf), *off)) > 0) {
		if (ml_write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
			return -1;
		*off += n;
	}
	return 0;
}

static int follow(const char *path, off_t *off, struct ml_err *e)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	_cleanup_close_ int sfd = ml_signalfd(sigs, 2);
	if (sfd < 0)
		return ml_err_set(e, sfd, "signalfd: %s", strerror(-sfd));
	for (;;) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		if (poll(&p, 1, FOLLOW_POLL_MS) > 0)
			return 0;
		if (copy_new(path, off) < 0)
			return 0;
	}
}

int cmd_log(int argc, char **argv, struct ml_err *e)
{
	bool f = false;
	struct flag t[] = {
		{ "follow", 'f', FLAG_BOOL, &f, "Follow the log until interrupted", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Show a sandbox's log.\n\nUsage:\n  matchlock log [<id>] [flags]\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (pos.n != 1)
		return ml_err_set(e, -EINVAL, "accepts 1 arg(s), received %zu", pos.n);
	struct vm_record rec;
	if ((r = vmstate_load(cli_settings()->state_dir, pos.v[0], &rec, e)) < 0) {
		ml_err_set(e, r, "VM not found %s: VM %s not found", pos.v[0], pos.v[0]);
		strv_clear(&pos);
		return r;
	}
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/logs/vm.log", rec.dir) < 0)
		path = NULL;
	vm_record_free(&rec);
	strv_clear(&pos);
	if (!path)
		return ml_err_set(e, -ENOMEM, "out of memory");
	off_t off = 0;
	copy_new(path, &off);
	return f ? follow(path, &off, e) : 0;
}
