/* rpc/net.c - the network thread of one sandbox.
 *
 * Theory of operation. One thread owns everything network: the engine's frame stream
 * (vmm_netstream), the frame layer and libslirp (slirpnet, which is not thread-safe) and the
 * flow handler (mitm). Each round it polls, in one array: a wake-up eventfd (stop), the
 * engine socket, slirpnet's fds (libslirp's sockets, DNS) and mitm's fds (both ends of every
 * relayed flow, TCP DNS flows), the control eventfd (rpc/netctl.c) and the netlink socket that
 * says this host's addresses changed. After poll:
 *   1. slirpnet_poll_done: libslirp reads/writes flow sockets, DNS replies are relayed (and
 *      their A records learned by mitm), timers run;
 *   2. mitm_poll_done, mitm_dns_poll_done: bytes are spliced between guest flows and upstream
 *      sockets; TCP DNS queries are answered or forwarded;
 *   3. the engine socket: every whole frame goes to slirpnet_input_frame (which may hand a
 *      new flow to mitm_flow, and asks mitm about each UDP DNS question);
 *   4. frames for the guest are drained from slirpnet into the stream's write buffer (only as
 *      many as fit, the rest wait in slirpnet's queue) and flushed;
 *   5. a waiting control call (allow-list, port forwards) runs, and the host's addresses are
 *      read again if they changed.
 * mitm asks for a flow to be reset (upstream refused it) through abort_flow; those requests
 * are queued and carried out between the phases above, never from inside slirpnet's own
 * callbacks, so slirpnet is never re-entered.
 * Memory: bounded by slirpnet's and mitm's flow limits (1024 each) and the stream buffers;
 * an idle flow costs about 9 KiB of RSS (tests/e2e/net_scale.sh measures it), a busy one up
 * to libslirp's two 128 KiB rings plus mitm's two 64 KiB buffers; the kernel buffers of the
 * upstream sockets share a per-VM budget (mitm), the frames queued for the guest 4 MiB
 * (slirpnet). tests/e2e/net_pressure.sh measures a thousand flows to a server that never
 * reads. */
#include "rpc/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "rpc/net_internal.h"

/* ---- callbacks (all on the network thread) ---- */
static int on_connect_check(void *arg, const struct sockaddr *dst)
{
	struct net *n = arg;
	return mitm_connect_check(n->m, dst);
}

static void on_flow(void *arg, int fd, const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	struct net *n = arg;
	mitm_flow(n->m, fd, src, dst);
}

static int on_dns_check(void *arg, const struct dnswire_query *q, const struct sockaddr_in *server)
{
	struct net *n = arg;
	return mitm_dns_allowed(n->m, q, server) ? 0 : -EACCES;
}

static void on_dns_answer(void *arg, const struct dnswire_answer *a)
{
	struct net *n = arg;
	mitm_dns_learn(n->m, a);
}

static void on_abort_flow(void *arg, const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	struct net *n = arg;
	/* Queue full: that flow ends with a FIN instead of a reset, which is still an end. */
	if (n->n_aborts < ABORT_QUEUE_MAX)
		n->aborts[n->n_aborts++] = (struct abort_req){ *src, *dst };
}

static void run_aborts(struct net *n)
{
	for (size_t i = 0; i < n->n_aborts; i++)
		slirpnet_flow_abort(n->sn, &n->aborts[i].src, &n->aborts[i].dst);
	n->n_aborts = 0;
}

static void on_frame(void *arg, const uint8_t *f, size_t len)
{
	struct net *n = arg;
	slirpnet_input_frame(n->sn, f, len);
	run_aborts(n);
}

/* ---- the loop ---- */
static int pfds_reserve(struct net *n, size_t want)
{
	if (want <= n->pfd_cap)
		return 0;
	size_t cap = want * 2;
	struct pollfd *p = realloc(n->pfds, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	n->pfds = p;
	n->pfd_cap = cap;
	return 0;
}

/* Moves frames from slirpnet's queue to the stream's buffer while they fit. */
static void drain_to_engine(struct net *n)
{
	while (vmm_netstream_room(n->ns) >= n->frame_cap) {
		ssize_t len = slirpnet_output_frame(n->sn, n->frame, n->frame_cap);
		if (len <= 0)
			break;
		vmm_netstream_queue(n->ns, n->frame, (size_t)len);
	}
}

static int engine_io(struct net *n, short rev)
{
	int r = 0;
	if (rev & (POLLIN | POLLHUP | POLLERR)) {
		r = vmm_netstream_read(n->ns, on_frame, n);
		if (r == -EPIPE)
			n->end_reason = "the VM engine closed the network stream";
		else if (r == -EPROTO)
			n->end_reason = "the VM engine sent a corrupt frame length";
		else if (r < 0)
			n->end_reason = "reading the network stream failed";
	}
	drain_to_engine(n);
	if (r == 0 && vmm_netstream_flush(n->ns) < 0) {
		n->end_reason = "writing the network stream failed";
		r = -EPIPE;
	}
	return r;
}

enum { PFD_WAKE, PFD_ENGINE, PFD_CMD, PFD_WATCH, PFD_FIXED };

/* One round; returns <0 when the loop must end. */
static int net_round(struct net *n)
{
	struct pollfd *sfds = NULL, *mfds = NULL, *dfds = NULL;
	size_t sn_n = 0, m_n = 0, d_n = 0;
	int timeout = -1;
	slirpnet_poll_fill(n->sn, &sfds, &sn_n, &timeout);
	mitm_poll_fill(n->m, &mfds, &m_n, &timeout);
	mitm_dns_poll_fill(n->m, &dfds, &d_n, &timeout);
	if (pfds_reserve(n, PFD_FIXED + sn_n + m_n + d_n) < 0) {
		n->end_reason = "out of memory";
		return -ENOMEM;
	}
	struct pollfd *p = n->pfds, *ps = p + PFD_FIXED, *pm = ps + sn_n, *pd = pm + m_n;
	p[PFD_WAKE] = (struct pollfd){ .fd = n->wake_fd, .events = POLLIN };
	p[PFD_ENGINE] = (struct pollfd){ .fd = n->engine_fd,
					 .events = POLLIN | (vmm_netstream_wants_write(n->ns) ? POLLOUT : 0) };
	p[PFD_CMD] = (struct pollfd){ .fd = n->cmd_fd, .events = POLLIN };
	p[PFD_WATCH] = (struct pollfd){ .fd = mitm_host_watch_fd(n->m), .events = POLLIN };
	/* an empty slice may come as NULL, which memcpy must not see */
	if (sn_n)
		memcpy(ps, sfds, sn_n * sizeof(*p));
	if (m_n)
		memcpy(pm, mfds, m_n * sizeof(*p));
	if (d_n)
		memcpy(pd, dfds, d_n * sizeof(*p));
	int pr = poll(p, PFD_FIXED + sn_n + m_n + d_n, timeout);
	if (pr < 0 && errno != EINTR) {
		n->end_reason = "poll failed";
		return -errno;
	}
	if (pr > 0 && p[PFD_WAKE].revents) {
		n->end_reason = "stopped";
		return -ECANCELED;
	}
	slirpnet_poll_done(n->sn, ps, sn_n, pr < 0);
	run_aborts(n);
	mitm_poll_done(n->m, pm, pr < 0 ? 0 : m_n);
	mitm_dns_poll_done(n->m, pd, pr < 0 ? 0 : d_n);
	run_aborts(n);
	int r = engine_io(n, pr > 0 ? p[PFD_ENGINE].revents : 0);
	if (pr > 0 && p[PFD_WATCH].revents)
		mitm_host_watch_changed(n->m);
	if (pr > 0 && p[PFD_CMD].revents)
		netctl_serve(n);
	return r;
}

static void *net_thread(void *arg)
{
	struct net *n = arg;
	ml_logger_bind_thread(n->log);
	while (net_round(n) >= 0)
		;
	netctl_thread_done(n);
	if (strcmp(n->end_reason, "stopped"))
		ml_info("guest network stopped: %s", n->end_reason);
	return NULL;
}

/* ---- set-up ---- */
/* libslirp gives every TCP socket two 128 KiB ring buffers (its TCP_SNDSPACE/RCVSPACE, not
 * configurable). glibc's adaptive threshold soon serves such blocks from the heap, where
 * they stay resident: measured 258 KiB of RSS per idle guest flow, 126 MiB for 500 flows.
 * A fixed threshold below 128 KiB keeps them mmap'd, so only pages that held data count
 * (measured: 9 KiB per idle flow), and they go back to the system when the flow ends.
 * mitm's 64 KiB relay buffers stay under it (no mmap/munmap per buffer). */
static void keep_slirp_buffers_lazy(void)
{
	if (mallopt(M_MMAP_THRESHOLD, 96 * 1024) != 1)
		ml_warn("mallopt(M_MMAP_THRESHOLD) failed: idle guest flows will cost more memory");
}

static void raise_fd_limit(void)
{
	/* Three fds per guest flow (libslirp's end, ours, upstream): 500 flows need more than the
	 * usual soft limit of 1024. The hard limit is ours to take. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			ml_warn("raising the open-file limit: %s", strerror(errno));
	}
}

static int parse_add_hosts(struct net *n, char **lines)
{
	size_t cnt = 0;
	for (char **l = lines; l && *l; l++)
		cnt++;
	n->add_hosts = calloc(cnt + 1, sizeof(*n->add_hosts));
	if (!n->add_hosts)
		return -ENOMEM;
	for (char **l = lines; l && *l; l++) {
		/* "ip host": only IPv4 entries can be destinations of a guest flow */
		const char *sp = strchr(*l, ' ');
		char ip[INET_ADDRSTRLEN];
		if (!sp || (size_t)(sp - *l) >= sizeof(ip))
			continue;
		memcpy(ip, *l, (size_t)(sp - *l));
		ip[sp - *l] = '\0';
		struct in_addr a;
		if (inet_pton(AF_INET, ip, &a) == 1)
			n->add_hosts[n->n_add_hosts++] = (struct mitm_add_host){ .host = sp + 1, .ip = a };
	}
	return 0;
}

static size_t fill_dns(struct sockaddr_in *dns, size_t max, char **servers)
{
	size_t cnt = 0;
	for (char **d = servers; d && *d && cnt < max; d++) {
		struct in_addr a;
		if (inet_pton(AF_INET, *d, &a) != 1)
			continue;
		dns[cnt++] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = a };
	}
	return cnt;
}

static int make_mitm(struct net *n, const struct net_opts *o, struct ml_err *e)
{
	size_t n_allow = 0;
	for (char **a = o->allow_hosts; a && *a; a++)
		n_allow++;
	int r = parse_add_hosts(n, o->add_hosts);
	if (r < 0)
		return ml_err_set(e, r, "out of memory");
	struct mitm_config mc = {
		.allow_hosts = o->allow_hosts, .n_allow_hosts = n_allow,
		.block_private_ips = o->block_private_ips,
		.add_hosts = n->add_hosts, .n_add_hosts = n->n_add_hosts,
		.abort_flow = on_abort_flow, .event = netctl_on_event, .arg = n,
	};
	mc.n_dns = fill_dns(mc.dns, MITM_MAX_DNS, o->dns);
	if (o->intercept) {
		/* the proxies' per-exchange events go to the same bounded queue (netctl.c) */
		n->icpt = *o->intercept;
		n->icpt.event = netctl_on_http_event;
		n->icpt.event_arg = n;
		mc.intercept = &n->icpt;
	}
	return mitm_new(&mc, &n->m, e);
}

static int make_slirpnet(struct net *n, const struct net_opts *o, struct ml_err *e)
{
	struct slirpnet_config sc = {
		.mtu = o->mtu, .connect_check = on_connect_check, .flow = on_flow,
		.dns_check = on_dns_check, .dns_answer = on_dns_answer, .arg = n,
		.runtime_dir = o->runtime_dir,
	};
	unsigned mac[6];
	if (sscanf(VMM_GUEST_MAC, "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6)
		return ml_err_set(e, -EINVAL, "bad guest MAC");
	for (int i = 0; i < 6; i++)
		sc.guest_mac[i] = (uint8_t)mac[i];
	sc.n_dns = fill_dns(sc.dns, SLIRPNET_MAX_DNS, o->dns);
	int r = slirpnet_new(&sc, &n->sn, e);
	if (r < 0)
		return ml_err_wrap(e, "guest network");
	return netctl_forwards_set(n, o->publish, o->n_publish, NULL, true, e);
}

int net_start(int engine_fd, const struct net_opts *o, struct net **out, struct ml_err *e)
{
	struct net *n = calloc(1, sizeof(*n));
	if (!n)
		return ml_err_set(e, -ENOMEM, "out of memory");
	n->engine_fd = engine_fd;
	n->cmd_fd = n->ev_fd = -1;
	n->log = o->log;
	n->end_reason = "stopped";
	n->frame_cap = (o->mtu ? o->mtu : 1500) + 14 + 4;
	n->frame = malloc(n->frame_cap);
	n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	raise_fd_limit();
	keep_slirp_buffers_lazy();
	int r = !n->frame || n->wake_fd < 0 ? ml_err_set(e, -ENOMEM, "guest network: out of resources") : 0;
	if (r == 0)
		r = netctl_init(n, e);
	if (r == 0 && vmm_netstream_new(engine_fd, &n->ns) < 0)
		r = ml_err_set(e, -ENOMEM, "out of memory");
	if (r == 0)
		r = make_mitm(n, o, e);
	if (r == 0)
		r = make_slirpnet(n, o, e);
	if (r == 0 && (r = -pthread_create(&n->thread, NULL, net_thread, n)) < 0)
		ml_err_set(e, r, "starting the network thread: %s", strerror(-r));
	if (r < 0) {
		net_stop(n);
		return r;
	}
	n->running = true;
	*out = n;
	return 0;
}

#define U(x) ((unsigned long long)(x))

static void log_stats(struct net *n)
{
	struct slirpnet_stats s;
	slirpnet_stats(n->sn, &s);
	ml_info("net: slirpnet frames_in=%llu frames_out=%llu flows_opened=%llu flows_active=%llu "
		"flows_aborted=%llu linger_evicted=%llu dns_forwarded=%llu dns_refused=%llu dns_aaaa_empty=%llu "
		"bytes_per_flow=%zu", U(s.frames_in), U(s.frames_out), U(s.flows_opened), U(s.flows_active),
		U(s.flows_aborted), U(s.linger_evicted), U(s.dns_forwarded), U(s.dns_refused), U(s.dns_aaaa_empty),
		s.bytes_per_flow);
	for (int i = 0; i < SLIRPNET_DROP__MAX; i++)
		if (s.drops[i])
			ml_info("net: drop %s=%llu", slirpnet_drop_name((enum slirpnet_drop)i), U(s.drops[i]));
	struct mitm_stats m;
	mitm_stats(n->m, &m);
	ml_info("net: mitm flows_total=%llu denied_private=%llu denied_blocked=%llu denied_allowlist=%llu "
		"denied_gateway=%llu dns_refused=%llu dns_tcp_flows=%llu dns_tcp_queries=%llu connect_failed=%llu "
		"bytes_up=%llu bytes_down=%llu bytes_per_flow_idle=%zu bytes_per_flow_max=%zu sockbuf_fixed=%llu "
		"host_addr_reloads=%llu", U(m.flows_total), U(m.denied_private), U(m.denied_blocked),
		U(m.denied_allowlist), U(m.denied_gateway), U(m.dns_refused), U(m.dns_tcp_flows),
		U(m.dns_tcp_queries), U(m.connect_failed), U(m.bytes_up), U(m.bytes_down), m.bytes_per_flow_idle,
		m.bytes_per_flow_max, U(m.sockbuf_fixed), U(m.host_addr_reloads));
	if (n->ev_dropped)
		ml_info("net: events dropped=%llu (queue full)", U(n->ev_dropped));
	if (m.requests_proxied || m.requests_blocked || m.tls_handshakes || m.tls_guest_failed)
		ml_info("net: intercept requests_proxied=%llu requests_blocked=%llu tls_handshakes=%llu "
			"tls_guest_failed=%llu tls_upstream_failed=%llu h2_connections=%llu upstream_reused=%llu",
			U(m.requests_proxied), U(m.requests_blocked), U(m.tls_handshakes), U(m.tls_guest_failed),
			U(m.tls_upstream_failed), U(m.h2_connections), U(m.upstream_reused));
}

void net_stop(struct net *n)
{
	if (!n)
		return;
	if (n->running) {
		uint64_t one = 1;
		if (write(n->wake_fd, &one, sizeof(one)) < 0)
			ml_warn("waking the network thread: %s", strerror(errno));
		pthread_join(n->thread, NULL);
	}
	if (n->sync_init)
		netctl_thread_done(n);
	if (n->sn && n->m)
		log_stats(n);
	mitm_free(n->m);
	slirpnet_free(n->sn);
	vmm_netstream_free(n->ns);
	if (n->wake_fd >= 0)
		close(n->wake_fd);
	netctl_free(n);
	free(n->add_hosts);
	free(n->pfds);
	free(n->frame);
	free(n);
}
