/* agent/sandbox.c - what an exec gives up unless EXF_PRIVILEGED: new privileges, capabilities
 * outside Docker's default set, and a handful of syscalls that reach the kernel's most
 * privileged or least audited corners. The VM is the security boundary; this is depth behind
 * it, and it keeps a guest root from rewriting the guest kernel the agent depends on. */
#include "agent/agent.h"

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static bool cap_kept(int cap)
{
	/* Docker's default capability set: what ordinary software (package managers, servers
	 * binding :80, ping, chown in builds) needs, and nothing that administers the kernel. */
	static const int keep[] = {
		CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,     CAP_FSETID,           CAP_KILL,
		CAP_SETGID, CAP_SETUID,       CAP_SETPCAP,    CAP_NET_BIND_SERVICE, CAP_NET_RAW,
		CAP_SYS_CHROOT, CAP_MKNOD,    CAP_AUDIT_WRITE, CAP_SETFCAP,
	};
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (keep[i] == cap)
			return true;
	return false;
}

int sandbox_drop_caps(struct ml_err *e)
{
	/* setuid binaries and file capabilities must not win back what we drop here */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return ml_err_set(e, -errno, "no_new_privs: %s", strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return ml_err_set(e, -errno, "clear ambient caps: %s", strerror(errno));
	/* Root's capabilities after execve are the bounding set, so shrinking it is enough.
	 * Walk until the kernel says EINVAL: it knows its last capability, we may not. */
	for (int cap = 0; cap < 64; cap++) {
		if (cap_kept(cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break;
			return ml_err_set(e, -errno, "drop capability %d: %s", cap, strerror(errno));
		}
	}
	return 0;
}

/* Each returns EPERM (a program may handle that gracefully), except clone3 (ENOSYS, below). */
static const int blocked[] = {
	/* loading code into the guest kernel, or replacing it */
	SCMP_SYS(init_module), SCMP_SYS(finit_module), SCMP_SYS(delete_module),
	SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load),
	/* large kernel attack surface, rarely needed by workloads: eBPF, perf, io_uring */
	SCMP_SYS(bpf), SCMP_SYS(perf_event_open),
	SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register),
	/* userfaultfd turns kernel races into reliable exploits */
	SCMP_SYS(userfaultfd),
	/* opening files by handle bypasses path-based checks (the "shocker" escape) */
	SCMP_SYS(open_by_handle_at),
	/* the kernel keyring is not namespaced */
	SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
	/* raw port I/O and x86 legacy modes */
	SCMP_SYS(iopl), SCMP_SYS(ioperm), SCMP_SYS(vm86), SCMP_SYS(vm86old),
	/* the agent owns the VM's lifetime, swap and accounting */
	SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(acct),
	SCMP_SYS(lookup_dcookie), SCMP_SYS(quotactl), SCMP_SYS(nfsservctl), SCMP_SYS(uselib),
	/* the agent set up the mounts (overlay root, /dev, cgroups); nobody may rearrange them */
	SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(umount), SCMP_SYS(pivot_root),
	SCMP_SYS(fsopen), SCMP_SYS(fsconfig), SCMP_SYS(fsmount), SCMP_SYS(fspick),
	SCMP_SYS(move_mount), SCMP_SYS(open_tree), SCMP_SYS(mount_setattr),
	/* joining namespaces; creating them is filtered by flag below */
	SCMP_SYS(setns),
	/* the clock is the host's (set at boot); a wrong clock breaks TLS checks in every exec */
	SCMP_SYS(settimeofday), SCMP_SYS(clock_settime), SCMP_SYS(clock_adjtime),
	SCMP_SYS(adjtimex), SCMP_SYS(stime),
	/* kernel log: addresses that help defeat KASLR */
	SCMP_SYS(syslog),
};

static int add_rules(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), blocked[i], 0);
		/* a syscall that does not exist on one of the arches is not an error */
		if (r < 0 && r != -EDOM && r != -EINVAL)
			return r;
	}
	/* A new user namespace hands its creator every capability inside it, which reopens
	 * mount and much of the above to any user. clone and unshare are filtered on the flag;
	 * clone3 passes its flags in memory a filter cannot read, so it answers ENOSYS and libc
	 * falls back to clone. */
	int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return r;
}

static int build_ctx(scmp_filter_ctx *out)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -ENOMEM;
	/* 32-bit binaries (int 0x80) get the same rules instead of being killed as foreign */
	int r = seccomp_arch_add(ctx, SCMP_ARCH_X86);
	if (r == -EEXIST)
		r = 0;
	if (r == 0)
		r = add_rules(ctx);
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
	*out = ctx;
	return 0;
}

/* The filter compiled once, at start: compiling it in every exec's child cost several ms per
 * exec under TCG (libseccomp builds the BPF program from scratch each time). */
static struct sock_fprog prebuilt;

int sandbox_prepare_seccomp(struct ml_err *e)
{
	scmp_filter_ctx ctx;
	int r = build_ctx(&ctx);
	if (r < 0)
		return ml_err_set(e, r, "seccomp filter: %s", strerror(-r));
	int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	off_t len = r == 0 ? lseek(fd, 0, SEEK_END) : -1;
	struct sock_filter *prog = len > 0 && len % sizeof(struct sock_filter) == 0 && len < (1 << 20)
		? malloc((size_t)len) : NULL;
	if (prog && pread(fd, prog, (size_t)len, 0) == len) {
		prebuilt.filter = prog;
		prebuilt.len = (unsigned short)(len / sizeof(struct sock_filter));
	} else {
		free(prog);
		r = r < 0 ? r : -EIO;
	}
	if (fd >= 0)
		close(fd);
	return r < 0 ? ml_err_set(e, r, "seccomp filter export: %s", strerror(-r)) : 0;
}

int sandbox_load_seccomp(struct ml_err *e)
{
	if (prebuilt.filter) {
		/* no_new_privs is already set (sandbox_drop_caps), so no CAP_SYS_ADMIN is needed */
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prebuilt, 0, 0) < 0)
			return ml_err_set(e, -errno, "seccomp filter: %s", strerror(errno));
		return 0;
	}
	scmp_filter_ctx ctx;
	int r = build_ctx(&ctx);
	if (r == 0) {
		r = seccomp_load(ctx);
		seccomp_release(ctx);
	}
	if (r < 0)
		return ml_err_set(e, r, "seccomp filter: %s", strerror(-r));
	return 0;
}
