/* cli/diagnose_checks.c - what this rootless design needs from a host: the engine, KVM (or why
 * TCG), the guest's kernel and agent, writable directories with room, libslirp, and enough
 * open files and processes. Each check says what it saw and, when not fine, what to do. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "cli/cmds.h"
#include "cli/diagnose.h"
#include "rpc/sandbox.h"
#include "slirpnet/slirpnet.h"
#include "vmm/vmm.h"

#define GB (1024.0 * 1024 * 1024)

void diag_engine(struct diag_report *r)
{
	struct diag_check *c = diag_add(r, "engine");
	_cleanup_free_ char *bin = NULL;
	struct ml_err e = { 0 };
	if (vmm_qemu_binary(cli_settings()->engine, &bin, &e) < 0)
		return diag_set(c, DIAG_FAIL, "install the qemu-system-x86 package (Debian: sudo apt-get "
				"install qemu-system-x86), or set MATCHLOCK_QEMU", "%s", e.msg);
	char out[512] = "";
	char *const argv[] = { bin, "--version", NULL };
	int st = diag_run(argv, 10000, out, sizeof(out));
	int major = 0, minor = 0;
	const char *v = strstr(out, "version ");
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !v || sscanf(v, "version %d.%d", &major, &minor) != 2)
		return diag_set(c, DIAG_FAIL, "reinstall qemu-system-x86", "%s --version failed: %.200s",
				bin, out[0] ? out : "no output");
	/* -netdev stream (the guest NIC's frames to our process) first came in QEMU 7.2 */
	if (major < 7 || (major == 7 && minor < 2))
		return diag_set(c, DIAG_FAIL, "install QEMU 7.2 or newer (Debian 12 has it)",
				"%s is QEMU %d.%d; matchlock needs 7.2 or newer (-netdev stream)", bin, major, minor);
	diag_set(c, DIAG_PASS, NULL, "%s (QEMU %d.%d)", bin, major, minor);
}

static bool kvm_device(struct diag_report *r)
{
	struct diag_check *c = diag_add(r, "kvm-device");
	struct stat st, pvm;
	if (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode)) {
		diag_set(c, DIAG_WARN, "load the KVM module (modprobe kvm_intel or kvm_amd) on a host with "
			 "hardware virtualization", "/dev/kvm is missing: VMs run under TCG (emulation, slower)");
		return false;
	}
	if (stat("/sys/module/kvm_pvm", &pvm) == 0)
		diag_set(c, DIAG_WARN, "nothing to do: VMs run under TCG on this host", "/dev/kvm is kvm_pvm, "
			 "a page-table virtualizer that cannot run an unmodified guest kernel");
	else
		diag_set(c, DIAG_PASS, NULL, "/dev/kvm present (mode %03o, owner %u:%u)",
			 (unsigned)st.st_mode & 0777, (unsigned)st.st_uid, (unsigned)st.st_gid);
	return true;
}

static void kvm_access(struct diag_report *r, bool present)
{
	struct diag_check *c = diag_add(r, "kvm-access");
	if (!present)
		return diag_set(c, DIAG_WARN, NULL, "not checked: no /dev/kvm");
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return diag_set(c, DIAG_WARN, "add this user to the group owning /dev/kvm (sudo usermod -aG kvm "
				"$USER) and log in again", "/dev/kvm cannot be opened read-write: %s (VMs run "
				"under TCG)", strerror(errno));
	close(fd);
	diag_set(c, DIAG_PASS, NULL, "/dev/kvm opens read-write for this user");
}

/* The engine's own choice and its reason (vmm_accel_choose), with what would change it. */
static void accelerator(struct diag_report *r)
{
	struct diag_check *c = diag_add(r, "accelerator");
	char why[320];
	enum vmm_accel a = vmm_accel_choose(cli_settings()->accel, why, sizeof(why));
	if (a == VMM_ACCEL_KVM)
		return diag_set(c, DIAG_PASS, NULL, "VMs will use KVM: %s", why + 5);
	const char *fix = strstr(why, "kvm_pvm") ? "nothing to do on this host: kvm_pvm cannot run a normal "
		"guest kernel, so TCG is the right choice here"
		: strstr(why, "MATCHLOCK_ACCEL") ? "unset MATCHLOCK_ACCEL to let matchlock choose"
		: strstr(why, "nested") ? "enable nested virtualization on the hypervisor running this host"
		: strstr(why, "/dev/kvm") ? "make /dev/kvm usable for this user (see kvm-access)"
		: "enable VT-x/AMD-V in the firmware";
	diag_set(c, DIAG_WARN, fix, "VMs will use TCG (emulation, slower): %s", why + 5);
}

void diag_kvm(struct diag_report *r)
{
	kvm_access(r, kvm_device(r));
	accelerator(r);
}

static bool regular(const char *p, struct stat *st)
{
	return stat(p, st) == 0 && S_ISREG(st->st_mode);
}

static void kernel_check(struct diag_report *r, const struct vmm_assets *a)
{
	static const char *fix = "run `sh scripts/setup.sh` from the matchlock source tree (or set "
				 "MATCHLOCK_KERNEL)";
	struct diag_check *c = diag_add(r, "guest-kernel");
	struct stat st;
	char dep[PATH_MAX], ver[PATH_MAX], v[128] = "";
	snprintf(dep, sizeof(dep), "%s/modules.dep", a->modules_dir);
	snprintf(ver, sizeof(ver), "%s/kernel/version", a->data_dir);
	if (!regular(a->kernel, &st))
		return diag_set(c, DIAG_FAIL, fix, "guest kernel not found at %s", a->kernel);
	double mb = (double)st.st_size / 1e6;
	if (!regular(dep, &st))
		return diag_set(c, DIAG_FAIL, fix, "guest kernel modules not found at %s", dep);
	_cleanup_fclose_ FILE *f = fopen(ver, "re");
	if (!f || !fgets(v, sizeof(v), f) || !v[0])
		return diag_set(c, DIAG_FAIL, fix, "guest kernel version file missing or empty: %s", ver);
	v[strcspn(v, "\r\n")] = '\0';
	diag_set(c, DIAG_PASS, NULL, "%s (%s, %.1f MB) with its modules", a->kernel, v, mb);
}

static void agent_check(struct diag_report *r, const struct vmm_assets *a)
{
	struct diag_check *c = diag_add(r, "guest-agent");
	struct stat st;
	char img[PATH_MAX];
	snprintf(img, sizeof(img), "%s/images/default.tar", a->data_dir);
	if (!regular(a->agent, &st) || !(st.st_mode & 0111))
		return diag_set(c, DIAG_FAIL, "run `make` (and `make install`) in the matchlock source tree",
				"guest agent missing or not executable: %s", a->agent);
	if (!regular(img, &st))
		return diag_set(c, DIAG_WARN, "run `make` (and `make install`): it builds the default image",
				"%s; the embedded default image is missing (%s): only pulled images run", a->agent, img);
	diag_set(c, DIAG_PASS, NULL, "%s, default image %s", a->agent, img);
}

void diag_assets(struct diag_report *r)
{
	const struct ml_settings *s = cli_settings();
	struct vmm_asset_paths paths = { s->data_dir, s->kernel, s->agent };
	struct vmm_assets a;
	struct ml_err e = { 0 };
	if (vmm_assets_paths(&paths, &a, &e) < 0) {
		diag_set(diag_add(r, "guest-kernel"), DIAG_FAIL, NULL, "%s", e.msg);
		diag_set(diag_add(r, "guest-agent"), DIAG_FAIL, NULL, "%s", e.msg);
		return;
	}
	kernel_check(r, &a);
	agent_check(r, &a);
	vmm_assets_free(&a);
}

/* The directory if it exists, else the nearest ancestor that does (where it would be made). */
static void existing_ancestor(const char *path, char *out, size_t n)
{
	snprintf(out, n, "%s", path);
	struct stat st;
	while (stat(out, &st) < 0 && strrchr(out, '/') && strrchr(out, '/') != out)
		*strrchr(out, '/') = '\0';
	if (stat(out, &st) < 0)
		snprintf(out, n, "/");
}

static void dir_check(struct diag_report *r, const char *name, const char *dir, double warn_gb,
		      const char *holds)
{
	struct diag_check *c = diag_add(r, name);
	char at[PATH_MAX];
	if (!dir)
		return diag_set(c, DIAG_FAIL, NULL, "out of memory");
	existing_ancestor(dir, at, sizeof(at));
	bool exists = !strcmp(at, dir);
	if (access(at, W_OK | X_OK) < 0)
		return diag_set(c, DIAG_FAIL, "give this user that directory (or set HOME / XDG_CACHE_HOME "
				"to one it owns)", "%s is not writable by this user (%s)", at, strerror(errno));
	struct statvfs vfs;
	double free_gb = statvfs(at, &vfs) == 0 ? (double)vfs.f_bavail * (double)vfs.f_frsize / GB : 0;
	char where[PATH_MAX + 64];
	snprintf(where, sizeof(where), exists ? "%s" : "%s (will be created in %s)", dir, at);
	if (free_gb < 0.25)
		return diag_set(c, DIAG_FAIL, "free some space there", "%s: only %.2f GB free (%s)", where,
				free_gb, holds);
	if (free_gb < warn_gb)
		return diag_set(c, DIAG_WARN, "free some space there", "%s: %.1f GB free, little for %s",
				where, free_gb, holds);
	diag_set(c, DIAG_PASS, NULL, "%s: writable, %.1f GB free", where, free_gb);
}

void diag_dirs(struct diag_report *r)
{
	const char *state = cli_settings()->state_dir;
	const char *cache = cli_settings()->cache_dir;
	dir_check(r, "state-dir", state, 1.0, "VM scratch disks and logs");
	/* a VM's control socket is <state>/vms/vm-xxxxxxxx/ctl.sock; unix socket paths stop at 107 */
	size_t sock = state ? strlen(state) + strlen("/vms/vm-00000000/ctl.sock") : 0;
	struct diag_check *c = &r->c[r->n - 1];
	if (state && sock > 107 && c->status != DIAG_FAIL)
		diag_set(c, DIAG_FAIL, "use a shorter HOME", "%s: a VM's control socket path would be %zu "
			 "bytes, over the 107 a unix socket allows", state, sock);
	dir_check(r, "cache-dir", cache, 2.0, "images, rootfs files and volumes");
}

void diag_libslirp(struct diag_report *r)
{
	struct diag_check *c = diag_add(r, "libslirp");
	const char *v = slirpnet_libslirp_version();
	int major = 0, minor = 0;
	if (!v || sscanf(v, "%d.%d", &major, &minor) != 2)
		return diag_set(c, DIAG_WARN, "install libslirp0 4.7 (Debian 12)", "unknown libslirp version");
	/* the flow hand-off (guest TCP flows out as plain fds) was proven on 4.7 */
	if (major < 4 || (major == 4 && minor < 7))
		return diag_set(c, DIAG_WARN, "install libslirp0 4.7 or newer", "libslirp %s: older than "
				"the 4.7 matchlock is built and tested with", v);
	diag_set(c, DIAG_PASS, NULL, "libslirp %s", v);
}

/* Tasks (threads count) this user runs now: RLIMIT_NPROC counts them per real uid. */
static long user_tasks(void)
{
	_cleanup_closedir_ DIR *d = opendir("/proc");
	struct dirent *de;
	long n = 0;
	uid_t me = getuid();
	while (d && (de = readdir(d))) {
		char p[300], line[128];
		unsigned uid = 0;
		long threads = 0;
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/status", de->d_name);
		_cleanup_fclose_ FILE *f = fopen(p, "re");
		while (f && fgets(line, sizeof(line), f)) {
			sscanf(line, "Uid: %u", &uid);
			sscanf(line, "Threads: %ld", &threads);
		}
		if (f && uid == me)
			n += threads;
	}
	return n;
}

/* One sandbox: the matchlock process (2 tasks: it and its network thread) and QEMU (main, RCU,
 * one per vCPU, a few I/O helpers, measured at 5 for one vCPU); QEMU's block I/O pool can add up
 * to 64 under heavy disk traffic. Open files: about 40 fixed, plus 3 per guest TCP connection
 * (guest side, host side, the proxy's upstream), up to 1024 connections; matchlock raises its
 * soft limit to the hard one by itself. */
#define TASKS_PER_SANDBOX 8
#define FDS_FIXED 40
#define FDS_PER_FLOW 3
#define MAX_FLOWS 1024

void diag_limits(struct diag_report *r)
{
	struct diag_check *c = diag_add(r, "open-files");
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	unsigned long long hard = rl.rlim_max == RLIM_INFINITY ? ~0ULL : rl.rlim_max;
	unsigned long long flows = hard > FDS_FIXED ? (hard - FDS_FIXED) / FDS_PER_FLOW : 0;
	const char *need = "a sandbox needs about 40 plus 3 per open guest TCP connection";
	if (flows < 64)
		diag_set(c, DIAG_FAIL, "raise the hard nofile limit (limits.conf or systemd LimitNOFILE) to "
			 "4096 or more", "hard limit %llu: %s, so fewer than 64 connections fit", hard, need);
	else if (flows < MAX_FLOWS)
		diag_set(c, DIAG_WARN, "raise the hard nofile limit to 4096 or more", "hard limit %llu "
			 "(soft %llu): %s; room for %llu per sandbox (matchlock allows %d)", hard,
			 (unsigned long long)rl.rlim_cur, need, flows, MAX_FLOWS);
	else
		diag_set(c, DIAG_PASS, NULL, "hard limit %llu (soft %llu, raised as needed): %s, up to %d "
			 "per sandbox", hard, (unsigned long long)rl.rlim_cur, need, MAX_FLOWS);
	c = diag_add(r, "processes");
	getrlimit(RLIMIT_NPROC, &rl);
	if (rl.rlim_cur == RLIM_INFINITY)
		return diag_set(c, DIAG_PASS, NULL, "no limit on this user's processes (a sandbox uses about "
				"%d tasks, up to 70 under heavy disk I/O)", TASKS_PER_SANDBOX);
	long used = user_tasks();
	long room = ((long)rl.rlim_cur - used) / TASKS_PER_SANDBOX;
	const char *fix = "raise nproc for this user (limits.conf or systemd TasksMax)";
	if (room < 1)
		return diag_set(c, DIAG_FAIL, fix, "limit %llu tasks, %ld in use: not enough for one more "
				"sandbox (about %d tasks each)", (unsigned long long)rl.rlim_cur, used, TASKS_PER_SANDBOX);
	diag_set(c, room < 8 ? DIAG_WARN : DIAG_PASS, room < 8 ? fix : NULL, "limit %llu tasks, %ld in "
		 "use: room for about %ld more sandboxes (about %d tasks each, up to 70 under heavy disk I/O)",
		 (unsigned long long)rl.rlim_cur, used, room, TASKS_PER_SANDBOX);
}
