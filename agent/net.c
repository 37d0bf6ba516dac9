/* agent/net.c - the guest's eth0, configured statically from PT_CONFIG.
 *
 * The host's frame layer (slirpnet/) does not answer DHCP: a DHCP client in PID 1 would cost
 * boot time and code for a configuration that never changes. The addresses are fixed by the
 * protocol (agent/PROTOCOL.md, CFG_NETWORK): guest 10.0.2.15/24, gateway 10.0.2.2. IPv6 is
 * switched off before the link comes up, so the guest never sends router solicitations or
 * MLD reports the host would only drop, and never waits on AAAA-only paths. */
#include "agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"

#define NET_IF "eth0"
#define NET_GUEST "10.0.2.15"
#define NET_MASK "255.255.255.0"
#define NET_GATEWAY "10.0.2.2"
#define NET_WAIT_MS 3000

static void set_sin(struct sockaddr *sa, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

/* The virtio-net driver probes asynchronously after its module is loaded at boot; by the time
 * the host's CONFIG arrives it has nearly always finished, but not provably so. */
static int wait_for_link(int fd, struct ml_err *e)
{
	struct ifreq ifr;
	for (int waited = 0;; waited += 10) {
		memset(&ifr, 0, sizeof(ifr));
		strcpy(ifr.ifr_name, NET_IF);
		if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0)
			return 0;
		if (errno != ENODEV || waited >= NET_WAIT_MS)
			return ml_err_set(e, -errno, "no %s after %d ms: %s", NET_IF, waited, strerror(errno));
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
}

static void ipv6_off(void)
{
	/* Best effort: a kernel without IPv6 has no such files and nothing to switch off. */
	struct ml_err ignored = { 0 };
	write_existing("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1", &ignored);
	write_existing("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1", &ignored);
	write_existing("/proc/sys/net/ipv6/conf/" NET_IF "/disable_ipv6", "1", &ignored);
}

static int if_ioctl(int fd, unsigned long req, struct ifreq *ifr, const char *what, struct ml_err *e)
{
	strcpy(ifr->ifr_name, NET_IF);
	if (ioctl(fd, req, ifr) < 0)
		return ml_err_set(e, -errno, "%s %s: %s", NET_IF, what, strerror(errno));
	return 0;
}

static int add_default_route(int fd, struct ml_err *e)
{
	struct rtentry rt;
	memset(&rt, 0, sizeof(rt));
	set_sin(&rt.rt_dst, "0.0.0.0");
	set_sin(&rt.rt_genmask, "0.0.0.0");
	set_sin(&rt.rt_gateway, NET_GATEWAY);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = (char *)NET_IF;
	if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		return ml_err_set(e, -errno, "default route via %s: %s", NET_GATEWAY, strerror(errno));
	return 0;
}

int net_configure(uint32_t mtu, struct ml_err *e)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ml_err_set(e, -errno, "socket: %s", strerror(errno));
	ipv6_off();
	int r = wait_for_link(fd, e);
	if (r < 0)
		return r;
	ipv6_off();
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_mtu = (int)mtu;
	if ((r = if_ioctl(fd, SIOCSIFMTU, &ifr, "set mtu", e)) < 0)
		return r;
	memset(&ifr, 0, sizeof(ifr));
	set_sin(&ifr.ifr_addr, NET_GUEST);
	if ((r = if_ioctl(fd, SIOCSIFADDR, &ifr, "set address", e)) < 0)
		return r;
	memset(&ifr, 0, sizeof(ifr));
	set_sin(&ifr.ifr_netmask, NET_MASK);
	if ((r = if_ioctl(fd, SIOCSIFNETMASK, &ifr, "set netmask", e)) < 0)
		return r;
	memset(&ifr, 0, sizeof(ifr));
	if ((r = if_ioctl(fd, SIOCGIFFLAGS, &ifr, "get flags", e)) < 0)
		return r;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if ((r = if_ioctl(fd, SIOCSIFFLAGS, &ifr, "bring up", e)) < 0)
		return r;
	return add_default_route(fd, e);
}
