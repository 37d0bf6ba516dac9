/* vmm/qemu.c - one VM: launch the engine as our child, wait for its control channel, watch it,
 * kill it.
 *
 * Order matters (docs/guest-traps.md): the control socket listens before QEMU starts, because
 * a QEMU client chardev that finds no listener fails (and a netdev one runs on silently dead).
 * QEMU connects at start-up, long before the guest boots, so the accept() here is quick; the
 * guest's agent then opens its end of the port and says PT_HELLO on the connection we hold. We
 * never half-close that connection: virtio-serial would drop the channel for good. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "vmm/vmm_internal.h"

#define CONNECT_TIMEOUT_MS 10000

/* what: "control" or "network", for the messages. */
static int engine_listen(const char *path, const char *what, struct ml_err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return ml_err_set(e, -ENAMETOOLONG, "%s socket path too long (%zu bytes, at most "
				  "%zu): %s", what, strlen(path), sizeof(sa.sun_path) - 1, path);
	strcpy(sa.sun_path, path);
	/* a socket left by a crashed run of this VM; the state dir is ours alone */
	unlink(path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ml_err_set(e, -errno, "create %s socket: %s", what, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return ml_err_set(e, -errno, "bind %s socket %s: %s", what, path, strerror(errno));
	if (chmod(path, 0600) < 0 || listen(fd, 1) < 0)
		return ml_err_set(e, -errno, "listen on %s socket %s: %s", what, path, strerror(errno));
	return steal_fd(&fd);
}

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

/* Accepts the engine's connection into *slot; 1 when taken, 0 when there was nothing to take
 * after all. The peer is not checked by pid: the socket sits in our 0700 state dir, so only our
 * own user (or root) can reach it, and a pid check would refuse a MATCHLOCK_QEMU wrapper that
 * forks. */
static int accept_engine(int lfd, int *slot, const char *what, struct ml_err *e)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED
			       ? 0 : ml_err_set(e, -errno, "accept %s channel: %s", what, strerror(errno));
	*slot = fd;
	return 1;
}

/* Waits until the engine has connected the control channel and, when there is one, the NIC's
 * frame stream (QEMU connects both while it initialises, before the guest runs). */
static int wait_for_engine(struct vmm *vm, int ctl_lfd, int net_lfd, struct ml_err *e)
{
	int64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
	for (;;) {
		bool ctl_done = vm->ctl_fd >= 0, net_done = net_lfd < 0 || vm->net_fd >= 0;
		if (ctl_done && net_done)
			return 0;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd[3] = { { .fd = vm->con.fd, .events = POLLIN },
					 { .fd = ctl_done ? -1 : ctl_lfd, .events = POLLIN },
					 { .fd = net_done ? -1 : net_lfd, .events = POLLIN } };
		if (poll(pfd, 3, (int)left) < 0 && errno != EINTR)
			return ml_err_set(e, -errno, "poll: %s", strerror(errno));
		if (pfd[0].revents && vmm_console_pump(vm) == -EPIPE)
			return engine_died(vm, e);
		int r = 0;
		if (pfd[1].revents)
			r = accept_engine(ctl_lfd, &vm->ctl_fd, "control", e);
		if (r >= 0 && pfd[2].revents)
			r = accept_engine(net_lfd, &vm->net_fd, "network", e);
		if (r < 0)
			return r;
	}
	vmm_kill(vm);
	vmm_console_pump(vm);
	return ml_err_set(e, -ETIMEDOUT, "the VM engine did not connect the %s channel within %d s: %s",
			  vm->ctl_fd < 0 ? "control" : "network", CONNECT_TIMEOUT_MS / 1000, last_line(vm));
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
	return 0;
}

/* The benchmark's baseline (QEMU's own libslirp instead of ours) is chosen by environment so
 * that the same binary, VM and guest image are measured both ways. */
static bool net_via_supervisor(const struct vmm_config *c)
{
	if (c->network && c->qemu_user_net) {
		ml_warn("MATCHLOCK_NET_BACKEND=qemu-user: QEMU's own user networking, without matchlock's "
			"policy (benchmark baseline)");
		return false;
	}
	return c->network;
}

static int start(struct vmm *vm, const struct vmm_config *c, struct ml_err *e)
{
	_cleanup_free_ char *bin = NULL;
	_cleanup_strv_ char **argv = NULL;
	int r = vmm_qemu_binary(c->engine, &bin, e);
	if (r < 0)
		return r;
	if (asprintf(&vm->ctl_path, "%s/ctl.sock", c->state_dir) < 0) {
		vm->ctl_path = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (net_via_supervisor(c) && asprintf(&vm->net_path, "%s/net.sock", c->state_dir) < 0) {
		vm->net_path = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	if ((r = vmm_qemu_argv(c, bin, vm->ctl_path, vm->net_path, vmm_host_tsc_khz(), &argv, e)) < 0)
		return r;
	_cleanup_close_ int lfd = engine_listen(vm->ctl_path, "control", e);
	if (lfd < 0)
		return lfd;
	_cleanup_close_ int net_lfd = vm->net_path ? engine_listen(vm->net_path, "network", e) : -1;
	if (vm->net_path && net_lfd < 0)
		return net_lfd;
	log_launch(c, argv);
	if ((r = spawn(vm, bin, argv, e)) < 0)
		return r;
	return wait_for_engine(vm, lfd, net_lfd, e);
}

int vmm_start(const struct vmm_config *c, struct vmm **out, struct ml_err *e)
{
	int r = check_config(c, e);
	if (r < 0)
		return r;
	struct vmm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return ml_err_set(e, -ENOMEM, "out of memory");
	vm->ctl_fd = -1;
	vm->net_fd = -1;
	vmm_console_init(&vm->con, -1, c->log);
	vm->reaped = true; /* nothing to reap until spawn() */
	if ((r = start(vm, c, e)) < 0) {
		vmm_free(vm);
		return r;
	}
	*out = vm;
	return 0;
}

int vmm_ctl_fd(const struct vmm *vm) { return vm->ctl_fd; }
int vmm_net_fd(const struct vmm *vm) { return vm->net_fd; }
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
	if (vm->ctl_fd >= 0)
		close(vm->ctl_fd);
	if (vm->con.fd >= 0)
		close(vm->con.fd);
	if (vm->net_fd >= 0)
		close(vm->net_fd);
	if (vm->ctl_path)
		unlink(vm->ctl_path);
	if (vm->net_path)
		unlink(vm->net_path);
	free(vm->ctl_path);
	free(vm->net_path);
	free(vm);
}
