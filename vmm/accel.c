/* vmm/accel.c - KVM or TCG, and the host's TSC frequency.
 *
 * KVM is chosen only when it can run an unmodified guest kernel. The trap is kvm_pvm (a
 * page-table virtualizer found on some cloud VMs): /dev/kvm opens fine, but QEMU with -accel kvm
 * then crawls or stops with an emulation error and does not exit, so probing by trying is no
 * good. We look for hardware virtualization (vmx/svm) and the absence of kvm_pvm instead. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "vmm/vmm.h"

/* Is word one of the space-separated words after "flags\t\t: " in /proc/cpuinfo? */
static bool cpuinfo_has_flag(const char *word)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return false;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		char *save = NULL;
		for (char *t = strtok_r(colon + 1, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
			if (!strcmp(t, word))
				return true;
		return false; /* the first CPU's flags are enough */
	}
	return false;
}

static bool path_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Returns true when KVM can run the guest; otherwise says why in reason. */
static bool kvm_usable(char *reason, size_t len)
{
	/* "hypervisor": this host is itself a VM, so KVM here would be nested virtualization */
	bool nested = cpuinfo_has_flag("hypervisor");
	if (!cpuinfo_has_flag("vmx") && !cpuinfo_has_flag("svm")) {
		snprintf(reason, len, "tcg: no vmx/svm in /proc/cpuinfo (%s)", nested
			 ? "this host is a VM and its hypervisor offers no nested virtualization"
			 : "no hardware virtualization, or it is off in the firmware");
		return false;
	}
	if (path_exists("/sys/module/kvm_pvm")) {
		snprintf(reason, len, "tcg: /sys/module/kvm_pvm present (kvm_pvm cannot run an "
			 "unmodified guest kernel)");
		return false;
	}
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(reason, len, "tcg: cannot open /dev/kvm read-write: %s", strerror(errno));
		return false;
	}
	close(fd);
	snprintf(reason, len, "kvm: %shardware virtualization and a usable /dev/kvm",
		 nested ? "nested " : "");
	return true;
}

enum vmm_accel vmm_accel_choose(const char *mode, char *reason, size_t reason_len)
{
	char buf[256];
	const char *env = mode;
	if (env && !strcmp(env, "kvm")) {
		snprintf(reason, reason_len, "kvm: forced by MATCHLOCK_ACCEL=kvm");
		return VMM_ACCEL_KVM;
	}
	if (env && !strcmp(env, "tcg")) {
		snprintf(reason, reason_len, "tcg: forced by MATCHLOCK_ACCEL=tcg");
		return VMM_ACCEL_TCG;
	}
	bool kvm = kvm_usable(buf, sizeof(buf));
	if (env && *env && strcmp(env, "auto") != 0)
		snprintf(reason, reason_len, "%s (MATCHLOCK_ACCEL=%.32s not understood: kvm, tcg "
			 "or auto; chose automatically)", buf, env);
	else
		snprintf(reason, reason_len, "%s", buf);
	return kvm ? VMM_ACCEL_KVM : VMM_ACCEL_TCG;
}

static unsigned long tsc_from_sysfs(void)
{
	_cleanup_fclose_ FILE *f = fopen("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "re");
	unsigned long khz = 0;
	if (!f || fscanf(f, "%lu", &khz) != 1)
		return 0;
	return khz;
}

/* "cpu MHz\t\t: 2096.016" -> 2096016, parsed as integer parts so no float rounding creeps in. */
static unsigned long tsc_from_cpuinfo(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "cpu MHz", 7) != 0)
			continue;
		char *colon = strchr(line, ':');
		if (!colon)
			return 0;
		unsigned long mhz = 0, frac = 0, scale = 1000;
		char *p = colon + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		mhz = strtoul(p, &p, 10);
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9' && scale > 1; p++) {
				scale /= 10;
				frac += (unsigned long)(*p - '0') * scale;
			}
		return mhz * 1000 + frac;
	}
	return 0;
}

unsigned long vmm_host_tsc_khz(void)
{
	unsigned long khz = tsc_from_sysfs();
	return khz ? khz : tsc_from_cpuinfo();
}
