/* cli/detach.c - `run -d`: the same run re-executed in the background (new session, stdio on
 * /dev/null, with --detach=false --rm=false), and its VM id printed alone on stdout once the
 * child's VM is recorded as running. The child then lives like a `run --rm=false`: its command's
 * output goes to the VM log, and it stays up until `matchlock kill`. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "cli/cmds.h"
#include "rpc/vmstate.h"

#define POLL_MS 100

/* argv of `matchlock run ...` with the two flags inserted before the first "--" (or at the end). */
static char **child_argv(int argc, char **argv)
{
	char **v = calloc((size_t)argc + 5, sizeof(char *));
	if (!v)
		return NULL;
	size_t n = 0;
	v[n++] = "matchlock";
	v[n++] = "run";
	bool inserted = false;
	for (int i = 0; i < argc; i++) {
		if (!inserted && !strcmp(argv[i], "--")) {
			v[n++] = "--detach=false";
			v[n++] = "--rm=false";
			inserted = true;
		}
		v[n++] = argv[i];
	}
	if (!inserted) {
		v[n++] = "--detach=false";
		v[n++] = "--rm=false";
	}
	return v;
}

static void child(char **v)
{
	/* the real path, not /proc/self/exe: the process name (comm) comes from it, and owners
	 * are recognized by theirs */
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		_exit(127);
	self[n] = '\0';
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	execv(self, v);
	_exit(127);
}

/* The VM the child registered: a record with its pid whose status is running. */
static bool find_vm(pid_t pid, char *id, size_t n)
{
	struct vm_record *v;
	size_t cnt;
	struct ml_err e;
	bool found = false;
	if (vmstate_list(cli_settings()->state_dir, &v, &cnt, &e) < 0)
		return false;
	for (size_t i = 0; i < cnt && !found; i++)
		if (v[i].pid == pid && !strcmp(v[i].status, "running")) {
			snprintf(id, n, "%s", v[i].id);
			found = true;
		}
	vm_records_free(v, cnt);
	return found;
}

int run_detach(int argc, char **argv, struct ml_err *e)
{
	_cleanup_free_ char **v = child_argv(argc, argv);
	if (!v)
		return ml_err_set(e, -ENOMEM, "out of memory");
	pid_t pid = fork();
	if (pid < 0)
		return ml_err_set(e, -errno, "fork: %s", strerror(errno));
	if (pid == 0)
		child(v);
	char id[32];
	for (;;) {
		if (find_vm(pid, id, sizeof(id))) {
			printf("%s\n", id);
			return 0;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return ml_err_set(e, -ESRCH, "find detached VM for detached process pid=%d", (int)pid);
		usleep(POLL_MS * 1000);
	}
}
