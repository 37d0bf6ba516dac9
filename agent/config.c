/* agent/config.c - apply PT_CONFIG once: root switch, clock, names, resolver, CPU quota, loopback,
 * eth0, the workspace. */
#include "agent/agent.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"

#define SANDBOX_CGROUP "/sys/fs/cgroup/sandbox"

static bool exec_cgroup_on;

const char *config_exec_cgroup(void) { return exec_cgroup_on ? SANDBOX_CGROUP : NULL; }

static int set_clock(uint64_t ns, struct ml_err *e)
{
	/* the VM has no RTC worth trusting; TLS and make need the host's idea of "now" */
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	if (ns && clock_settime(CLOCK_REALTIME, &ts) < 0)
		return ml_err_set(e, -errno, "set clock: %s", strerror(errno));
	return 0;
}

static int set_names(const struct proto_config *c, struct ml_err *e)
{
	const char *host = c->hostname && c->hostname[0] ? c->hostname : "matchlock";
	if (sethostname(host, strlen(host)) < 0)
		return ml_err_set(e, -errno, "sethostname %s: %s", host, strerror(errno));
	if (mkdir_p("/etc", 0755) < 0)
		return ml_err_set(e, -errno, "create /etc: %s", strerror(errno));
	char line[300];
	snprintf(line, sizeof(line), "%s\n", host);
	int r = replace_file("/etc/hostname", line, 0644, e);
	if (r < 0)
		return r;
	if (c->hosts) {
		r = replace_file("/etc/hosts", c->hosts, 0644, e);
	} else {
		char hosts[512];
		snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
			 "127.0.1.1\t%s\n", host);
		r = replace_file("/etc/hosts", hosts, 0644, e);
	}
	if (r == 0 && c->resolv)
		r = replace_file("/etc/resolv.conf", c->resolv, 0644, e);
	return r;
}

static int set_cpu_quota(uint32_t quota_us, struct ml_err *e)
{
	if (quota_us == 0)
		return 0;
	int r = write_existing("/sys/fs/cgroup/cgroup.subtree_control", "+cpu", e);
	if (r < 0)
		return r;
	if (mkdir(SANDBOX_CGROUP, 0755) < 0 && errno != EEXIST)
		return ml_err_set(e, -errno, "create %s: %s", SANDBOX_CGROUP, strerror(errno));
	char max[64];
	snprintf(max, sizeof(max), "%u 100000", quota_us);
	r = write_existing(SANDBOX_CGROUP "/cpu.max", max, e);
	if (r == 0)
		exec_cgroup_on = true;
	return r;
}

static int loopback_up(struct ml_err *e)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ml_err_set(e, -errno, "socket: %s", strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return ml_err_set(e, -errno, "lo flags: %s", strerror(errno));
	/* the kernel gives lo 127.0.0.1/8 and ::1 by itself once it is up */
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return ml_err_set(e, -errno, "bring up lo: %s", strerror(errno));
	return 0;
}

int config_apply(const struct proto_config *c, struct ml_err *e)
{
	int r = rootfs_switch(e);
	if (r == 0)
		r = set_clock(c->time_ns, e);
	if (r == 0)
		r = set_names(c, e);
	if (r == 0 && c->ca_pem)
		r = ca_install(c->ca_pem, e);
	if (r == 0)
		r = set_cpu_quota(c->cpu_quota_us, e);
	if (r == 0)
		r = loopback_up(e);
	if (r == 0 && c->network)
		r = net_configure(c->mtu ? c->mtu : 1500, e);
	if (r == 0)
		r = disks_mount(c, e);
	if (r == 0)
		r = workspace_mount(c, e);
	return r;
}
