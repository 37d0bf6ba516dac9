/* agent/child.c - the forked child of an exec, from fork() to execve(). Anything that fails here
 * is written as one line to the status pipe (the parent turns it into PT_ERROR) and the child
 * exits 127; a successful execve closes the CLOEXEC pipe with nothing written. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void reset_signals(void)
{
	/* the agent blocks SIGCHLD (signalfd) and ignores SIGPIPE; ignored signals and the mask
	 * survive execve, so a child would otherwise never see SIGPIPE */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
}

static int setup_stdio(const struct child_fds *f, struct ml_err *e)
{
	if (f->tty >= 0) {
		if (ioctl(f->tty, TIOCSCTTY, 0) < 0)
			return ml_err_set(e, -errno, "controlling tty: %s", strerror(errno));
		for (int fd = 0; fd <= 2; fd++)
			if (dup2(f->tty, fd) < 0)
				return ml_err_set(e, -errno, "dup2: %s", strerror(errno));
		return 0;
	}
	int in = f->in;
	if (in < 0 && (in = open("/dev/null", O_RDONLY)) < 0)
		return ml_err_set(e, -errno, "open /dev/null: %s", strerror(errno));
	/* all source fds are > 2 (boot_std_fds keeps 0..2 taken in the agent) */
	if (dup2(in, 0) < 0 || dup2(f->out, 1) < 0 || dup2(f->err, 2) < 0)
		return ml_err_set(e, -errno, "dup2: %s", strerror(errno));
	return 0;
}

static bool env_has(char *const *env, const char *key)
{
	size_t n = strlen(key);
	for (; env && *env; env++)
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return true;
	return false;
}

/* EX_ENV is the whole environment; HOME and PATH are added if missing, and USER/LOGNAME too
 * when EX_USER named someone (login tools expect them to match the uid). */
static char **build_env(char *const *req, const struct user_ids *u, bool named)
{
	size_t n = 0;
	while (req && req[n])
		n++;
	char **env = calloc(n + 5, sizeof(char *));
	if (!env)
		return NULL;
	memcpy(env, req, n * sizeof(char *));
	char *add[4] = { NULL, NULL, NULL, NULL };
	if (!env_has(env, "HOME") && asprintf(&add[0], "HOME=%s", u->home) < 0)
		return NULL;
	if (named && u->name && !env_has(env, "USER") && asprintf(&add[1], "USER=%s", u->name) < 0)
		return NULL;
	if (named && u->name && !env_has(env, "LOGNAME") && asprintf(&add[2], "LOGNAME=%s", u->name) < 0)
		return NULL;
	if (!env_has(env, "PATH") && !(add[3] = strdup("PATH=" DEFAULT_PATH)))
		return NULL;
	for (int i = 0; i < 4; i++)
		if (add[i])
			env[n++] = add[i];
	return env;
}

static int join_cgroup(struct ml_err *e)
{
	const char *cg = config_exec_cgroup();
	if (!cg)
		return 0;
	char path[256];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	return write_existing(path, "0", e); /* "0" moves the writer itself */
}

static int become_user(const struct user_ids *u, struct ml_err *e)
{
	if (setgroups(u->ngroups, u->groups) < 0)
		return ml_err_set(e, -errno, "setgroups: %s", strerror(errno));
	if (setgid(u->gid) < 0)
		return ml_err_set(e, -errno, "setgid %u: %s", (unsigned)u->gid, strerror(errno));
	if (setuid(u->uid) < 0)
		return ml_err_set(e, -errno, "setuid %u: %s", (unsigned)u->uid, strerror(errno));
	return 0;
}

static int child_setup(const struct proto_exec *x, const struct child_fds *f, struct ml_err *e)
{
	reset_signals();
	if (setsid() < 0)
		return ml_err_set(e, -errno, "setsid: %s", strerror(errno));
	int r = setup_stdio(f, e);
	if (r < 0)
		return r;
	/* nothing of the agent may leak into the workload; the status pipe closes at execve */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	if (x->flags & EXF_FILEOP) {
		/* no execve will close the agent's fds here: close them all now (other execs'
		 * stdin pipes must not stay open in us), the status pipe too, which says "started" */
		close_range(3, ~0U, 0);
		child_fileop(x);
	}
	r = join_cgroup(e);
	if (r < 0)
		return r;
	struct user_ids u;
	r = user_resolve("/etc", x->user, &u, e);
	if (r < 0)
		return r;
	char **env = build_env(x->env, &u, x->user != NULL);
	if (!env)
		return ml_err_set(e, -ENOMEM, "out of memory");
	bool privileged = x->flags & EXF_PRIVILEGED;
	if (!privileged && (r = sandbox_drop_caps(e)) < 0)
		return r;
	if ((r = become_user(&u, e)) < 0)
		return r;
	const char *cwd = x->cwd && x->cwd[0] ? x->cwd : "/";
	if (chdir(cwd) < 0)
		return ml_err_set(e, -errno, "working directory %s: %s", cwd, strerror(errno));
	/* last: the filter applies to everything after it, and none of the above needs it off */
	if (!privileged && (r = sandbox_load_seccomp(e)) < 0)
		return r;
	/* execvp searches the caller's PATH, so the new environment must be in place first */
	environ = env;
	execvp(x->argv[0], x->argv);
	return ml_err_set(e, -errno, "exec: %s: %s", x->argv[0], strerror(errno));
}

void child_exec(const struct proto_exec *x, const struct child_fds *f)
{
	struct ml_err e = { 0, "" };
	child_setup(x, f, &e);
	if (write_all(f->status, e.msg, strlen(e.msg)) < 0) {
		/* the parent is gone or the pipe is broken; the exit status is all that is left */
	}
	_exit(127);
}
