/* vmm/qemu.c - one VM: launch the engine as our child, wait for its channels, watch it, kill it.
 *
 * Order matters (docs/guest-traps.md): every channel socket (chans.c) listens before QEMU
 * starts, because a QEMU client chardev that finds no listener fails (and a netdev one runs on
 * silently dead). QEMU connects at start-up, long before the guest boots, so the accepts here
 * are quick; the guest's agent then opens its end of the control port and says PT_HELLO on the
 * connection we hold. We never half-close a serial connection: virtio-serial would drop the
 * channel for good. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "vmm/vmm_internal.h"

#define CONNECT_TIMEOUT_MS 10000

static void close_from(int lowfd)
{
	if (close_range((unsigned)lowfd, ~0u, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	for (int fd = lowfd; fd < (max > 0 ? max : 1024); fd++)
		close(fd);
}

/* Runs in the child between fork and exec: only async-signal-safe calls (everything it needs was
 * allocated before the fork). */
static _Noreturn void child_exec(const char *bin, char *const *argv, int out_fd, pid_t parent)
{
	/* The engine must not outlive us. The death signal fires when the forking *thread* exits,
	 * so vmm_start must be called from a thread that lives as long as the VM (main's). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	/* Dispositions set to "ignore" and the signal mask survive exec: give QEMU clean ones. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	if (out_fd < 3)
		out_fd = fcntl(out_fd, F_DUPFD, 3);
	int null = open("/dev/null", O_RDONLY);
	if (out_fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		_exit(127);
	close_from(3);
	execv(bin, argv);
	dprintf(2, "matchlock: cannot run %s: %s\n", bin, strerror(errno));
	_exit(127);
}

static int spawn(struct vmm *vm, const char *bin, char *const *argv, struct ml_err *e)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ml_err_set(e, -errno, "pipe: %s", strerror(errno));
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(p[0]);
		close(p[1]);
		return ml_err_set(e, -err, "fork: %s", strerror(err));
	}
	if (pid == 0)
		child_exec(bin, argv, p[1], parent);
	close(p[1]);
	fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
	vm->pid = pid;
	vm->reaped = false;
	vm->con.fd = p[0];
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The last line of the console, which is where QEMU puts its fatal error. */
static const char *last_line(struct vmm *vm)
{
	const char *t = vmm_console_tail(vm);
	const char *nl = strrchr(t, '\n');
	return nl ? nl + 1 : (*t ? t : "(no output)");
}

static int engine_died(struct vmm *vm, struct ml_err *e)
{
	int st = 0;
	/* It closed its output, so it is exiting; give it a moment before the hard way. */
	for (int i = 0; i < 100 && vmm_reap(vm, &st) == 0; i++)
		usleep(10000);
	vmm_kill(vm);
	st = vm->status;
	char how[48];
	if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(st));
	return ml_err_set(e, -ECHILD, "the VM engine stopped before the guest started (%s): %s",
			  how, last_line(vm));
}

/* Waits until the engine has connected every channel (QEMU connects them while it initialises,
 * before the guest runs), draining the console meanwhile. */
static int wait_for_engine(struct vmm *vm, struct ml_err *e)
{
	int64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
	int pending;
	while ((pending = vmm_chans_pending(vm)) >= 0) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd[1 + VMM_CHAN_COUNT] = { { .fd = vm->con.fd, .events = POLLIN } };
		for (int i = 0; i < VMM_CHAN_COUNT; i++)
			pfd[1 + i] = (struct pollfd){ .fd = vm->chan[i].lfd, .events = POLLIN };
		if (poll(pfd, 1 + VMM_CHAN_COUNT, (int)left) < 0 && errno != EINTR)
			return ml_err_set(e, -errno, "poll: %s", strerror(errno));
		if (pfd[0].revents && vmm_console_pump(vm) == -EPIPE)
			return engine_died(vm, e);
		for (int i = 0; i < VMM_CHAN_COUNT; i++) {
			int r = pfd[1 + i].revents ? vmm_chan_accept(&vm->chan[i], vmm_chans[i].what, e) : 0;
			if (r < 0)
				return r;
		}
	}
	if (pending < 0)
		return 0;
	vmm_kill(vm);
	vmm_console_pump(vm);
	return ml_err_set(e, -ETIMEDOUT, "the VM engine did not connect the %s channel within %d s: %s",
			  vmm_chans[pending].what, CONNECT_TIMEOUT_MS / 1000, last_line(vm));
}

static const char *accel_name(enum vmm_accel a)
{
	return a == VMM_ACCEL_KVM ? "kvm" : "tcg";
}

static void log_launch(const struct vmm_config *c, char *const *argv)
{
	char reason[320];
	enum vmm_accel auto_pick = vmm_accel_choose(NULL, reason, sizeof(reason));
	if (auto_pick == c->accel)
		ml_info("accelerator %s (%s)", accel_name(c->accel), reason);
	else
		ml_info("accelerator %s (asked by the caller; the host check says %s)",
			accel_name(c->accel), reason);
	_cleanup_free_ char *line = vmm_argv_line(argv);
	ml_info("engine: %s", line ? line : "(out of memory)");
}

static int check_drives(const struct vmm_config *c, struct ml_err *e)
{
	if (c->n_drives > VMM_MAX_DRIVES)
		return ml_err_set(e, -E2BIG, "vmm_start: %zu extra disks (at most %d)", c->n_drives, VMM_MAX_DRIVES);
	for (size_t i = 0; i < c->n_drives; i++) {
		const struct vmm_drive *d = &c->drives[i];
		size_t n = d->serial ? strlen(d->serial) : 0;
		if (!d->path || n == 0 || n > 20 || strspn(d->serial, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
			return ml_err_set(e, -EINVAL, "vmm_start: extra disk %zu needs a path and a serial of "
					  "1-20 [a-z0-9-]", i);
		if (access(d->path, d->readonly ? R_OK : R_OK | W_OK) < 0)
			return ml_err_set(e, -errno, "cannot %s %s: %s", d->readonly ? "read" : "read and write",
					  d->path, strerror(errno));
	}
	return 0;
}

static int check_config(const struct vmm_config *c, struct ml_err *e)
{
	if (!c->state_dir || !c->kernel || !c->initrd || !c->rootfs || !c->scratch)
		return ml_err_set(e, -EINVAL, "vmm_start: state dir, kernel, initrd and disks are needed");
	if (c->accel != VMM_ACCEL_KVM && c->accel != VMM_ACCEL_TCG)
		return ml_err_set(e, -EINVAL, "vmm_start: the accelerator must be resolved (kvm or tcg)");
	/* QEMU opens the disks only after it has connected the control channel, so a missing
	 * file would show up as a dead engine after a "successful" start: say it plainly first. */
	const char *const readable[] = { c->kernel, c->initrd, c->rootfs, c->scratch };
	for (size_t i = 0; i < 4; i++)
		if (access(readable[i], R_OK) < 0)
			return ml_err_set(e, -errno, "cannot read %s: %s", readable[i], strerror(errno));
	if (access(c->scratch, W_OK) < 0)
		return ml_err_set(e, -errno, "cannot write %s: %s", c->scratch, strerror(errno));
	if (c->mem_mb < 64)
		return ml_err_set(e, -EINVAL, "guest memory %u MiB is too small (at least 64)", c->mem_mb);
	return check_drives(c, e);
}

static int start(struct vmm *vm, const struct vmm_config *c, struct ml_err *e)
{
	_cleanup_free_ char *bin = NULL;
	_cleanup_strv_ char **argv = NULL;
	int r = vmm_qemu_binary(c->engine, &bin, e);
	if (r < 0)
		return r;
	if ((r = vmm_chans_listen(vm, c, e)) < 0)
		return r;
	const char *paths[VMM_CHAN_COUNT];
	for (int i = 0; i < VMM_CHAN_COUNT; i++)
		paths[i] = vm->chan[i].path;
	if (c->network && !paths[VMM_CHAN_NET])
		ml_warn("MATCHLOCK_NET_BACKEND=qemu-user: QEMU's own user networking, without matchlock's "
			"policy (benchmark baseline)");
	if ((r = vmm_qemu_argv(c, bin, paths, vmm_host_tsc_khz(), &argv, e)) < 0)
		return r;
	log_launch(c, argv);
	if ((r = spawn(vm, bin, argv, e)) < 0)
		return r;
	return wait_for_engine(vm, e);
}

int vmm_start(const struct vmm_config *c, struct vmm **out, struct ml_err *e)
{
	int r = check_config(c, e);
	if (r < 0)
		return r;
	struct vmm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return ml_err_set(e, -ENOMEM, "out of memory");
	vmm_chans_init(vm);
	vmm_console_init(&vm->con, -1, c->log);
	vm->reaped = true; /* nothing to reap until spawn() */
	if ((r = start(vm, c, e)) < 0) {
		vmm_free(vm);
		return r;
	}
	*out = vm;
	return 0;
}

int vmm_ctl_fd(const struct vmm *vm) { return vmm_chan_fd(vm, VMM_CHAN_CTL); }
int vmm_net_fd(const struct vmm *vm) { return vmm_chan_fd(vm, VMM_CHAN_NET); }
int vmm_console_fd(const struct vmm *vm) { return vm->con.fd; }
pid_t vmm_pid(const struct vmm *vm) { return vm->pid; }
int vmm_console_pump(struct vmm *vm) { return vmm_console_read(&vm->con); }
const char *vmm_console_tail(struct vmm *vm) { return vmm_console_tail_of(&vm->con); }

int vmm_reap(struct vmm *vm, int *status)
{
	if (!vm->reaped) {
		int st;
		pid_t r = waitpid(vm->pid, &st, WNOHANG);
		if (r == 0)
			return 0;
		if (r < 0 && errno == EINTR)
			return 0;
		/* ECHILD: someone reaped it behind our back (a waitpid(-1)); its status is lost */
		vm->status = r > 0 ? st : W_EXITCODE(255, 0);
		vm->reaped = true;
	}
	if (status)
		*status = vm->status;
	return 1;
}

int vmm_wait_exit(struct vmm *vm, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	bool eof = vm->con.fd < 0;
	while (!vmm_reap(vm, NULL)) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (eof) { /* it closed its output and is exiting: only the reap is left */
			usleep(5000);
			continue;
		}
		struct pollfd p = { .fd = vm->con.fd, .events = POLLIN };
		if (poll(&p, 1, left > 50 ? 50 : (int)left) > 0)
			eof = vmm_console_pump(vm) == -EPIPE;
	}
	return 0;
}

void vmm_kill(struct vmm *vm)
{
	if (!vm || vm->reaped)
		return;
	/* Safe against pid reuse: until we reap it, the pid stays ours (a zombie at worst). */
	kill(vm->pid, SIGKILL);
	int st;
	pid_t r;
	while ((r = waitpid(vm->pid, &st, 0)) < 0 && errno == EINTR)
		;
	vm->status = r > 0 ? st : W_EXITCODE(255, 0);
	vm->reaped = true;
}

void vmm_free(struct vmm *vm)
{
	if (!vm)
		return;
	vmm_kill(vm);
	vmm_chans_close(vm);
	if (vm->con.fd >= 0)
		close(vm->con.fd);
	free(vm);
}
