/* vmm/qemu_args.c - the engine's command line: machine, kernel, disks and channels. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "vmm/vmm_internal.h"

#define QEMU_DEFAULT "qemu-system-x86_64"

struct argv_builder {
	char **v;
	size_t n;
	int err;
};

static void add(struct argv_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct argv_builder *b, const char *fmt, ...)
{
	if (b->err)
		return;
	char **v = realloc(b->v, (b->n + 2) * sizeof(*v));
	if (!v) {
		b->err = -ENOMEM;
		return;
	}
	b->v = v;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&v[b->n], fmt, ap);
	va_end(ap);
	if (r < 0) {
		v[b->n] = NULL;
		b->err = -ENOMEM;
		return;
	}
	v[++b->n] = NULL;
}

/* QEMU splits -drive/-chardev option strings at commas, and ",," stands for a literal comma, so
 * a path with a comma in it would otherwise be read as more options. */
static char *qemu_escape(const char *path)
{
	size_t commas = 0;
	for (const char *p = path; *p; p++)
		commas += *p == ',';
	char *out = malloc(strlen(path) + commas + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = path; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

int vmm_qemu_binary(const char *override, char **path, struct ml_err *e)
{
	const char *env = override;
	if (env && *env) {
		if (access(env, X_OK) < 0)
			return ml_err_set(e, -errno, "MATCHLOCK_QEMU=%s: %s", env, strerror(errno));
		*path = strdup(env);
		return *path ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
	}
	const char *search = getenv("PATH");
	_cleanup_free_ char *dirs = strdup(search && *search ? search : "/usr/local/bin:/usr/bin:/bin");
	if (!dirs)
		return ml_err_set(e, -ENOMEM, "out of memory");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *cand = NULL;
		if (asprintf(&cand, "%s/%s", d, QEMU_DEFAULT) < 0)
			return ml_err_set(e, -ENOMEM, "out of memory");
		if (access(cand, X_OK) == 0) {
			*path = steal_ptr(&cand);
			return 0;
		}
	}
	return ml_err_set(e, -ENOENT, "%s not found in PATH: install the qemu-system-x86 package "
			  "(or set MATCHLOCK_QEMU)", QEMU_DEFAULT);
}

static void add_machine(struct argv_builder *b, const struct vmm_config *c)
{
	add(b, "-M");
	add(b, "microvm");
	add(b, "-accel");
	if (c->accel == VMM_ACCEL_KVM) {
		add(b, "kvm");
		add(b, "-cpu");
		add(b, "host");
	} else {
		/* one host thread per vCPU; the default for x86 TCG, said out loud */
		add(b, "tcg,thread=multi");
		/* QEMU's default qemu64 model lacks SSE4.2/POPCNT, so images built for x86-64-v2
		 * (RHEL 9 and kin) die at their first exec; "max" offers all TCG can emulate, at
		 * no measured boot cost. */
		add(b, "-cpu");
		add(b, "max");
	}
	add(b, "-m");
	add(b, "%uM", c->mem_mb);
	add(b, "-smp");
	add(b, "%u", c->vcpus ? c->vcpus : 1);
	add(b, "-no-user-config");
	add(b, "-nodefaults");
	add(b, "-display");
	add(b, "none");
	add(b, "-no-reboot");
}

static void add_kernel(struct argv_builder *b, const struct vmm_config *c, unsigned long tsc_khz)
{
	char tsc[64] = "";
	/* Under TCG about one boot in ten hangs calibrating the TSC against the PIT; telling the
	 * kernel the frequency skips the calibration. tsc=reliable skips the watchdog that would
	 * otherwise declare the (emulated, jittery) TSC unstable and fall back to a slow clock. */
	if (tsc_khz)
		snprintf(tsc, sizeof(tsc), " tsc_early_khz=%lu", tsc_khz);
	add(b, "-kernel");
	add(b, "%s", c->kernel);
	add(b, "-initrd");
	add(b, "%s", c->initrd);
	add(b, "-append");
	/* panic=-1 + reboot=t + -no-reboot: a guest panic ends the engine at once instead of
	 * hanging. reboot=t (triple fault) because microvm has no keyboard controller and the
	 * kernel's default reboot methods spin forever there (seen: a panicked guest never exited).
	 * 8250.nr_uarts=1: we have one serial port; probing the other three costs boot time. */
	add(b, "console=ttyS0 quiet panic=-1 reboot=t%s tsc=reliable 8250.nr_uarts=1", tsc);
	add(b, "-chardev");
	add(b, "stdio,id=con0,signal=off");
	add(b, "-serial");
	add(b, "chardev:con0");
}

/* format=raw always: QEMU must never probe a user's file for a format (a raw disk holding a
 * qcow2 header would otherwise make QEMU open the backing file it names). werror=report: the
 * default stops the whole VM when the host's disk is full, which would hang the sandbox; the
 * guest gets an I/O error instead. */
static void add_extra_drives(struct argv_builder *b, const struct vmm_config *c)
{
	for (size_t i = 0; i < c->n_drives && !b->err; i++) {
		const struct vmm_drive *d = &c->drives[i];
		_cleanup_free_ char *path = qemu_escape(d->path);
		if (!path) {
			b->err = -ENOMEM;
			return;
		}
		add(b, "-drive");
		add(b, "id=xd%zu,file=%s,format=raw,if=none,%s,werror=report,rerror=report", i, path,
		    d->readonly ? "readonly=on" : "discard=unmap");
		add(b, "-device");
		add(b, "virtio-blk-device,drive=xd%zu,serial=%s", i, d->serial);
	}
}

static void add_disks(struct argv_builder *b, const struct vmm_config *c)
{
	_cleanup_free_ char *root = qemu_escape(c->rootfs), *scratch = qemu_escape(c->scratch);
	if (!root || !scratch) {
		b->err = -ENOMEM;
		return;
	}
	add(b, "-drive");
	add(b, "id=rootfs,file=%s,format=raw,if=none,readonly=on", root);
	add(b, "-device");
	add(b, "virtio-blk-device,drive=rootfs,serial=rootfs");
	/* The scratch disk lives and dies with this VM, so a host crash losing unflushed writes
	 * loses nothing anyone keeps: cache=unsafe lets the guest's flushes return at once.
	 * discard=unmap gives the space of deleted guest files back to the sparse file. */
	add(b, "-drive");
	add(b, "id=scratch,file=%s,format=raw,if=none,cache=unsafe,discard=unmap,werror=report", scratch);
	add(b, "-device");
	add(b, "virtio-blk-device,drive=scratch,serial=scratch");
	add_extra_drives(b, c);
}

/* A serial channel: QEMU is the client of our socket (we listen before launching it, so it can
 * never miss us); the guest finds the port by its name. */
static void add_serial(struct argv_builder *b, const struct vmm_chan_def *d, const char *path)
{
	_cleanup_free_ char *p = qemu_escape(path);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	add(b, "-chardev");
	add(b, "socket,id=%s,path=%s,server=off", d->id, p);
	add(b, "-device");
	add(b, "virtserialport,chardev=%s,name=%s", d->id, d->port);
}

/* The guest NIC on the supervisor's frame socket: a stream netdev that finds no listener runs
 * on with a dead NIC and says nothing, hence the listen before launch. */
static void add_netdev(struct argv_builder *b, const struct vmm_chan_def *d, const char *path)
{
	_cleanup_free_ char *p = qemu_escape(path);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	add(b, "-netdev");
	add(b, "stream,id=%s,server=off,addr.type=unix,addr.path=%s", d->id, p);
	add(b, "-device");
	add(b, "virtio-net-device,netdev=%s,mac=%s", d->id, VMM_GUEST_MAC);
}

static void add_channels(struct argv_builder *b, const char *const paths[VMM_CHAN_COUNT])
{
	add(b, "-device");
	add(b, "virtio-serial-device");
	for (int i = 0; i < VMM_CHAN_COUNT; i++) {
		if (!paths[i])
			continue;
		if (vmm_chans[i].kind == VMM_CHAN_SERIAL)
			add_serial(b, &vmm_chans[i], paths[i]);
		else
			add_netdev(b, &vmm_chans[i], paths[i]);
	}
	add(b, "-device");
	add(b, "virtio-rng-device");
}

/* A NIC without our frame channel: MATCHLOCK_NET_BACKEND=qemu-user swaps in QEMU's own libslirp
 * (no policy, no DNS handling of ours). Only the benchmark uses it, as the baseline. */
static void add_baseline_network(struct argv_builder *b, const struct vmm_config *c,
				 const char *const paths[VMM_CHAN_COUNT])
{
	if (!c->network || paths[VMM_CHAN_NET])
		return;
	add(b, "-netdev");
	add(b, "user,id=n0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3");
	add(b, "-device");
	add(b, "virtio-net-device,netdev=n0,mac=%s", VMM_GUEST_MAC);
}

int vmm_qemu_argv(const struct vmm_config *c, const char *binary,
		  const char *const paths[VMM_CHAN_COUNT], unsigned long tsc_khz, char ***argv,
		  struct ml_err *e)
{
	struct argv_builder b = { 0 };
	add(&b, "%s", binary);
	add_machine(&b, c);
	add_kernel(&b, c, tsc_khz);
	if (!b.err)
		add_disks(&b, c);
	if (!b.err)
		add_channels(&b, paths);
	add_baseline_network(&b, c, paths);
	if (b.err) {
		strv_free(b.v);
		return ml_err_set(e, b.err, "out of memory");
	}
	*argv = b.v;
	return 0;
}

char *vmm_argv_line(char *const *argv)
{
	size_t len = 1;
	for (size_t i = 0; argv[i]; i++)
		len += strlen(argv[i]) * 4 + 3; /* worst case: every byte escaped, quotes, space */
	char *out = malloc(len), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; argv[i]; i++) {
		bool quote = !argv[i][0] || strpbrk(argv[i], " \t\n'\"\\$`");
		if (i)
			*o++ = ' ';
		if (quote)
			*o++ = '\'';
		for (const char *p = argv[i]; *p; p++) {
			if (*p == '\'') {
				memcpy(o, "'\\''", 4);
				o += 4;
			} else
				*o++ = (unsigned char)*p < 0x20 ? '?' : *p; /* keep it one line */
		}
		if (quote)
			*o++ = '\'';
	}
	*o = '\0';
	return out;
}
