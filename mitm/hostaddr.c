/* mitm/hostaddr.c - this host's own IPv4 addresses, which the guest must never reach by
 * dialing them (the host's services are opened only through the gateway mapping the user
 * opts into). Read at mitm_new and again whenever the kernel says an address came or went: a
 * VPN, a DHCP renewal or a new container bridge appears while a long sandbox runs.
 *
 * The watch is a NETLINK_ROUTE socket subscribed to RTMGRP_IPV4_IFADDR (no privilege needed).
 * Its messages are only a wake-up: they are drained unread and getifaddrs() gives the whole
 * new set, so a lost or truncated message (ENOBUFS on overflow) cannot leave a stale list.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/internal.h"

int hostaddr_read(struct mitm *m, struct ml_err *e)
{
	struct ifaddrs *ifa, *i;
	uint32_t *addrs;
	size_t n = 0, k = 0;

	if (getifaddrs(&ifa) < 0)
		return ml_err_set(e, -errno, "mitm: getifaddrs");
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
			n++;
	addrs = calloc(n ? n : 1, sizeof(*addrs));
	if (!addrs) {
		freeifaddrs(ifa);
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	}
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
			addrs[k++] = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
	freeifaddrs(ifa);
	free(m->host_addrs);
	m->host_addrs = addrs;
	m->n_host_addrs = k;
	return 0;
}

void hostaddr_watch_open(struct mitm *m)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_IPV4_IFADDR };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ml_warn("mitm: cannot watch this host's addresses (%s): only those present now are blocked",
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	m->watch_fd = fd;
}

int mitm_host_watch_fd(const struct mitm *m)
{
	return m->watch_fd;
}

void mitm_host_watch_changed(struct mitm *m)
{
	uint8_t buf[8192];
	struct ml_err e;

	if (m->watch_fd < 0)
		return;
	/* Drain: ENOBUFS (overflow) only means messages were lost, and we re-read everything. */
	for (int i = 0; i < 256; i++) {
		ssize_t r = recv(m->watch_fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && errno != ENOBUFS && errno != EINTR)
			break;
	}
	if (hostaddr_read(m, &e) < 0) {
		ml_warn("%s: keeping the previous list of this host's addresses", e.msg);
		return;
	}
	m->st.host_addr_reloads++;
	ml_debug("mitm: this host's addresses changed: %zu IPv4 addresses now", m->n_host_addrs);
}

void hostaddr_free(struct mitm *m)
{
	if (m->watch_fd >= 0)
		close(m->watch_fd);
	m->watch_fd = -1;
	free(m->host_addrs);
	m->host_addrs = NULL;
	m->n_host_addrs = 0;
}
