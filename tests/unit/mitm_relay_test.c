/* tests/unit/mitm_relay_test.c - the relay with real sockets, loopback only. A socketpair end
 * stands in for the guest (slirpnet's fd); the upstream is a TCP listener on 127.0.0.1 reached
 * through the gateway mapping (allow-list "10.0.2.2", destination 10.0.2.2:<port>). The test
 * drives mitm_poll_fill / poll / mitm_poll_done itself. Proves: 4 MiB each way intact, FIN in
 * both orders, refused / timed-out / reset upstreams reset the guest (abort_flow) and close its
 * fd, a guest reset resets the upstream, backpressure both ways with bounded memory, 300
 * concurrent flows to one destination kept apart, idle and half-closed flows reaped, a full
 * table refuses the next flow. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/loop.h"
#include "mitm/internal.h"
#include "mitm/mitm.h"

#define MIB (1024u * 1024u)
#define NFLOWS 300

struct world {
	struct mitm *m;
	int lfd;
	uint16_t port;
	int aborts;
	struct sockaddr_in abort_src, abort_dst;
};

static void on_abort(void *arg, const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	struct world *w = arg;

	w->aborts++;
	w->abort_src = *src;
	w->abort_dst = *dst;
}

static int listen_on_loopback(uint16_t *port, int backlog)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static struct world *start(unsigned idle_ms, unsigned half_ms, unsigned max_flows, unsigned conn_ms)
{
	static char *allow[] = { "10.0.2.2" };
	struct world *w = calloc(1, sizeof(*w));
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = 1,
				 .idle_timeout_ms = idle_ms, .half_close_ms = half_ms,
				 .max_flows = max_flows, .connect_timeout_ms = conn_ms,
				 .abort_flow = on_abort };
	struct ml_err e;

	assert_non_null(w);
	c.arg = w;
	if (mitm_new(&c, &w->m, &e) < 0)
		fail_msg("mitm_new: %s", e.msg);
	w->lfd = listen_on_loopback(&w->port, 1024);
	return w;
}

static void stop(struct world *w)
{
	mitm_free(w->m);
	close(w->lfd);
	free(w);
}

static struct mitm_stats stats(struct world *w)
{
	struct mitm_stats st;

	mitm_stats(w->m, &st);
	return st;
}

/* A guest flow to 10.0.2.2:port; returns the test's end of the "guest" socketpair. */
static int guest_flow(struct world *w, uint16_t gport, uint16_t port)
{
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(gport),
				   .sin_addr.s_addr = htonl(0x0a00020f) };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(0x0a000202) };
	int sv[2];

	assert_int_equal(mitm_connect_check(w->m, (struct sockaddr *)&dst), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	mitm_flow(w->m, sv[1], &src, &dst);
	return sv[0];
}

/* One loop iteration of the caller, as rpc/net.c does it. */
static void turn(struct world *w, int max_ms)
{
	struct pollfd *fds;
	size_t n;
	int t = max_ms, r;

	mitm_poll_fill(w->m, &fds, &n, &t);
	if (t < 0 || t > max_ms)
		t = max_ms;
	r = poll(fds, n, t);
	assert_true(r >= 0 || errno == EINTR);
	mitm_poll_done(w->m, fds, r < 0 ? 0 : n);
}

static int accept_upstream(struct world *w)
{
	int64_t end = ml_now_ms() + 5000;

	while (ml_now_ms() < end) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0)
			return fd;
		assert_true(errno == EAGAIN);
		turn(w, 5);
	}
	fail_msg("no upstream connection arrived");
	return -1;
}

static void turn_until(struct world *w, bool (*done)(struct world *, void *), void *arg, int ms)
{
	int64_t end = ml_now_ms() + ms;

	while (!done(w, arg)) {
		if (ml_now_ms() > end)
			fail_msg("timed out after %d ms", ms);
		turn(w, 5);
	}
}

static bool no_flows(struct world *w, void *arg)
{
	(void)arg;
	return stats(w).flows_active == 0;
}

static bool aborted(struct world *w, void *arg)
{
	return w->aborts >= *(int *)arg;
}

/* Reads until EOF (0) or error (-errno), turning the loop; returns the bytes read. */
static ssize_t read_to_end(struct world *w, int fd, char *buf, size_t cap, int *err)
{
	size_t got = 0;
	int64_t end = ml_now_ms() + 5000;

	*err = 0;
	while (ml_now_ms() < end) {
		ssize_t r = recv(fd, buf + got, cap - got, MSG_DONTWAIT);

		if (r == 0)
			return (ssize_t)got;
		if (r > 0) {
			got += (size_t)r;
			assert_true(got < cap);
		} else if (errno != EAGAIN) {
			*err = -errno;
			return (ssize_t)got;
		}
		turn(w, 5);
	}
	fail_msg("no EOF within 5 s (%zu bytes read)", got);
	return -1;
}

static int ioctl_unread(int fd, int *n)
{
	return ioctl(fd, FIONREAD, n);
}

static uint8_t pattern(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 32 | seed);

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return (uint8_t)(x ^ x >> 32);
}

/* One direction of a test transfer: a pattern written on wfd, checked as it arrives on rfd. */
struct stream {
	int wfd, rfd;
	uint32_t seed;
	uint64_t total, sent, got;
	uint32_t sum_sent, sum_got;   /* FNV-1a of what went in and what came out */
	bool shut, eof;
};

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void stream_step(struct stream *s, bool shut_when_sent)
{
	uint8_t buf[32768];
	ssize_t r;

	if (s->sent < s->total) {
		size_t n = s->total - s->sent < sizeof(buf) ? (size_t)(s->total - s->sent) : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(s->seed, s->sent + i);
		r = send(s->wfd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			s->sum_sent = fnv(s->sum_sent, buf, (size_t)r);
			s->sent += (uint64_t)r;
		} else {
			assert_true(r < 0 && errno == EAGAIN);
		}
	} else if (shut_when_sent && !s->shut) {
		assert_int_equal(shutdown(s->wfd, SHUT_WR), 0);
		s->shut = true;
	}
	if (s->eof)
		return;
	r = recv(s->rfd, buf, sizeof(buf), MSG_DONTWAIT);
	if (r == 0) {
		s->eof = true;
		return;
	}
	if (r < 0) {
		assert_true(errno == EAGAIN);
		return;
	}
	for (ssize_t i = 0; i < r; i++)
		if (buf[i] != pattern(s->seed, s->got + (uint64_t)i))
			fail_msg("byte %llu differs", (unsigned long long)(s->got + (uint64_t)i));
	s->sum_got = fnv(s->sum_got, buf, (size_t)r);
	s->got += (uint64_t)r;
}

static void test_4mib_each_way_intact(void **state)
{
	struct world *w = start(0, 0, 0, 0);
	int g = guest_flow(w, 40000, w->port), u = accept_upstream(w);
	struct stream up = { .wfd = g, .rfd = u, .seed = 1, .total = 4 * MIB, .sum_sent = 2166136261u, .sum_got = 2166136261u };
	struct stream down = { .wfd = u, .rfd = g, .seed = 2, .total = 4 * MIB, .sum_sent = 2166136261u, .sum_got = 2166136261u };
	int64_t end = ml_now_ms() + 30000;
	struct mitm_stats st;

	(void)state;
	while (!(up.eof && down.eof)) {
		if (ml_now_ms() > end)
			fail_msg("stalled: up %llu/%llu down %llu/%llu", (unsigned long long)up.got,
				 (unsigned long long)up.total, (unsigned long long)down.got,
				 (unsigned long long)down.total);
		turn(w, 1);
		stream_step(&up, true);
		stream_step(&down, true);
	}
	assert_int_equal(up.got, 4 * MIB);
	assert_int_equal(down.got, 4 * MIB);
	assert_int_equal(up.sum_got, up.sum_sent);
	assert_int_equal(down.sum_got, down.sum_sent);
	turn_until(w, no_flows, NULL, 5000);  /* FIN both ways: the flow is gone */
	st = stats(w);
	assert_int_equal(st.bytes_up, 4 * MIB);
	assert_int_equal(st.bytes_down, 4 * MIB);
	assert_int_equal(st.buffers_in_use, 0);
	assert_int_equal(st.flows_total, 1);
	assert_int_equal(w->aborts, 0);
	close(g);
	close(u);
	stop(w);
}

/* first = the side that finishes first; the other still talks after it. */
static void half_close(int first_is_guest)
{
	struct world *w = start(0, 0, 0, 0);
	int g = guest_flow(w, 40001, w->port), u = accept_upstream(w), err;
	int a = first_is_guest ? g : u, b = first_is_guest ? u : g;
	char buf[64];

	assert_int_equal(send(a, "hello", 5, MSG_NOSIGNAL), 5);
	assert_int_equal(shutdown(a, SHUT_WR), 0);
	assert_int_equal(read_to_end(w, b, buf, sizeof(buf), &err), 5);
	assert_int_equal(err, 0);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(stats(w).flows_active, 1);  /* the other way is still open */
	assert_int_equal(send(b, "world!", 6, MSG_NOSIGNAL), 6);
	assert_int_equal(shutdown(b, SHUT_WR), 0);
	assert_int_equal(read_to_end(w, a, buf, sizeof(buf), &err), 6);
	assert_int_equal(err, 0);
	assert_memory_equal(buf, "world!", 6);
	turn_until(w, no_flows, NULL, 5000);
	assert_int_equal(w->aborts, 0);
	close(g);
	close(u);
	stop(w);
}

static void test_half_close_guest_first(void **state)
{
	(void)state;
	half_close(1);
}

static void test_half_close_upstream_first(void **state)
{
	(void)state;
	half_close(0);
}

static void test_refused_connect_resets_the_guest(void **state)
{
	struct world *w = start(0, 0, 0, 0);
	uint16_t dead_port;
	int one = 1, err;
	int l = listen_on_loopback(&dead_port, 1), g;
	char buf[8];

	(void)state;
	close(l);  /* nothing listens there now */
	g = guest_flow(w, 40002, dead_port);
	turn_until(w, aborted, &one, 5000);
	assert_int_equal(w->aborts, 1);
	assert_int_equal(ntohs(w->abort_src.sin_port), 40002);
	assert_int_equal(ntohl(w->abort_dst.sin_addr.s_addr), 0x0a000202);
	assert_int_equal(ntohs(w->abort_dst.sin_port), dead_port);
	assert_int_equal(read_to_end(w, g, buf, sizeof(buf), &err), 0);  /* fd closed */
	assert_int_equal(stats(w).connect_failed, 1);
	assert_int_equal(stats(w).flows_active, 0);
	close(g);
	stop(w);
}

static void test_connect_timeout_resets_the_guest(void **state)
{
	struct world *w = start(0, 0, 0, 300);
	uint16_t port;
	int l = listen_on_loopback(&port, 0), one = 1, err;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fill[2], g;
	int64_t t0;
	char buf[8];

	(void)state;
	/* A listener that never accepts and whose queue is full drops further SYNs. */
	for (int i = 0; i < 2; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(connect(fill[i], (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	}
	usleep(50000);
	t0 = ml_now_ms();
	g = guest_flow(w, 40003, port);
	turn_until(w, aborted, &one, 5000);
	assert_true(ml_now_ms() - t0 >= 290);
	assert_int_equal(stats(w).connect_timeout, 1);
	assert_int_equal(read_to_end(w, g, buf, sizeof(buf), &err), 0);
	assert_int_equal(stats(w).flows_active, 0);
	close(g);
	close(fill[0]);
	close(fill[1]);
	close(l);
	stop(w);
}

static void test_upstream_reset_resets_the_guest(void **state)
{
	struct world *w = start(0, 0, 0, 0);
	int g = guest_flow(w, 40004, w->port), u = accept_upstream(w), one = 1, err;
	struct linger lg = { 1, 0 };
	char buf[8];

	(void)state;
	assert_int_equal(send(u, "x", 1, MSG_NOSIGNAL), 1);
	assert_int_equal(setsockopt(u, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(u);  /* RST */
	turn_until(w, aborted, &one, 5000);
	read_to_end(w, g, buf, sizeof(buf), &err);
	assert_true(err == 0 || err == -ECONNRESET);
	assert_int_equal(stats(w).flows_active, 0);
	close(g);
	stop(w);
}

static void test_guest_reset_resets_the_upstream(void **state)
{
	struct world *w = start(0, 0, 0, 0);
	int g = guest_flow(w, 40005, w->port), u = accept_upstream(w), err;
	char buf[8];
	int64_t end = ml_now_ms() + 5000;
	int pending = 0;

	(void)state;
	assert_int_equal(send(u, "unread", 6, MSG_NOSIGNAL), 6);
	while (!pending && ml_now_ms() < end) {  /* until it sits unread at the guest */
		turn(w, 5);
		assert_int_equal(ioctl_unread(g, &pending), 0);
	}
	assert_true(pending > 0);
	close(g);  /* closing with unread data is the unix-socket form of a reset */
	read_to_end(w, u, buf, sizeof(buf), &err);
	assert_int_equal(err, -ECONNRESET);
	assert_int_equal(w->aborts, 0);  /* the guest already knows */
	turn_until(w, no_flows, NULL, 5000);
	close(u);
	stop(w);
}

/* The reader side does not read: the writer must block and mitm hold at most one buffer. */
static void backpressure(int guest_is_reader)
{
	struct world *w = start(0, 0, 0, 0);
	int g = guest_flow(w, 40006, w->port), u = accept_upstream(w);
	struct stream s = { .wfd = guest_is_reader ? u : g, .rfd = guest_is_reader ? g : u,
			    .seed = 7, .total = 256 * MIB };
	int64_t last_progress = ml_now_ms(), end = last_progress + 20000;
	uint64_t written = 0;
	struct mitm_stats st;

	while (ml_now_ms() - last_progress < 300) {
		uint64_t before = s.sent;

		assert_true(ml_now_ms() < end);
		s.eof = true;  /* stream_step: write only */
		stream_step(&s, false);
		turn(w, 2);
		if (s.sent != before)
			last_progress = ml_now_ms();
		st = stats(w);
		assert_true(st.buffers_in_use <= 1);
	}
	written = s.sent;
	print_message("writer blocked after %llu KiB\n", (unsigned long long)(written / 1024));
	assert_true(written < 64 * MIB);  /* bounded by socket buffers plus one 64 KiB buffer */
	assert_int_equal(stats(w).buffers_in_use, 1);
	/* Now read everything, intact, and the buffer goes away. */
	s.total = written;
	s.eof = false;
	while (s.got < written) {
		assert_true(ml_now_ms() < end + 20000);
		turn(w, 1);
		stream_step(&s, false);
	}
	assert_int_equal(s.got, written);
	turn(w, 1);
	assert_int_equal(stats(w).buffers_in_use, 0);
	close(g);
	close(u);
	stop(w);
}

static void test_backpressure_guest_not_reading(void **state)
{
	(void)state;
	backpressure(1);
}

static void test_backpressure_upstream_not_reading(void **state)
{
	(void)state;
	backpressure(0);
}

struct echo {
	int fd;
	uint8_t buf[4096];
	size_t len;
	bool eof, done;
};

static void echo_step(struct echo *e)
{
	ssize_t r;

	if (e->done)
		return;
	if (!e->len && !e->eof) {
		r = recv(e->fd, e->buf, sizeof(e->buf), MSG_DONTWAIT);
		if (r == 0)
			e->eof = true;
		else if (r > 0)
			e->len = (size_t)r;
	}
	if (e->len) {
		r = send(e->fd, e->buf, e->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			memmove(e->buf, e->buf + r, e->len - (size_t)r);
			e->len -= (size_t)r;
		}
	}
	if (e->eof && !e->len) {
		shutdown(e->fd, SHUT_WR);
		e->done = true;
	}
}

static void test_300_concurrent_flows_to_one_destination(void **state)
{
	struct world *w = start(0, 0, 0, 0);
	static struct stream s[NFLOWS];
	static struct echo e[NFLOWS];
	int n_up = 0, done = 0;
	int64_t end = ml_now_ms() + 60000;

	(void)state;
	for (int i = 0; i < NFLOWS; i++) {
		int g = guest_flow(w, (uint16_t)(30000 + i), w->port);

		/* Each flow carries its own pattern and gets it back from an echo upstream. */
		s[i] = (struct stream){ .wfd = g, .rfd = g, .seed = (uint32_t)(100 + i), .total = 20000 };
	}
	assert_int_equal(stats(w).flows_active, NFLOWS);
	while (done < NFLOWS) {
		int fd;

		assert_true(ml_now_ms() < end);
		turn(w, 1);
		while (n_up < NFLOWS && (fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			e[n_up++] = (struct echo){ .fd = fd };
		for (int i = 0; i < n_up; i++)
			echo_step(&e[i]);
		done = 0;
		for (int i = 0; i < NFLOWS; i++) {
			stream_step(&s[i], true);
			done += s[i].eof;
		}
	}
	for (int i = 0; i < NFLOWS; i++)
		if (s[i].got != 20000)
			fail_msg("flow %d got %llu bytes", i, (unsigned long long)s[i].got);
	turn_until(w, no_flows, NULL, 5000);
	assert_int_equal(stats(w).flows_total, NFLOWS);
	assert_int_equal(stats(w).bytes_up, NFLOWS * 20000ull);
	assert_int_equal(stats(w).buffers_in_use, 0);
	for (int i = 0; i < NFLOWS; i++) {
		close(s[i].wfd);
		close(e[i].fd);
	}
	stop(w);
}

static void test_idle_flow_is_reaped(void **state)
{
	struct world *w = start(150, 10000, 0, 0);
	int g = guest_flow(w, 40007, w->port), u = accept_upstream(w), err;
	int64_t t0 = ml_now_ms();
	char buf[8];

	(void)state;
	turn_until(w, no_flows, NULL, 3000);
	assert_true(ml_now_ms() - t0 >= 100);
	assert_int_equal(stats(w).reaped_idle, 1);
	assert_int_equal(read_to_end(w, g, buf, sizeof(buf), &err), 0);
	assert_int_equal(read_to_end(w, u, buf, sizeof(buf), &err), 0);
	assert_int_equal(w->aborts, 0);
	close(g);
	close(u);
	stop(w);
}

static void test_talking_flow_is_not_reaped(void **state)
{
	struct world *w = start(500, 500, 0, 0);
	int g = guest_flow(w, 40008, w->port), u = accept_upstream(w);
	int64_t end = ml_now_ms() + 1500;
	char c;

	(void)state;
	while (ml_now_ms() < end) {  /* a byte every ~50 ms, 3 x the idle limit in total */
		assert_int_equal(send(g, "p", 1, MSG_NOSIGNAL), 1);
		for (int i = 0; i < 10; i++)
			turn(w, 5);
		while (recv(u, &c, 1, MSG_DONTWAIT) == 1)
			;
	}
	assert_int_equal(stats(w).reaped_idle, 0);
	assert_int_equal(stats(w).flows_active, 1);
	close(g);
	close(u);
	stop(w);
}

static void test_half_closed_silent_flow_is_reaped(void **state)
{
	struct world *w = start(10000, 150, 0, 0);
	int g = guest_flow(w, 40009, w->port), u = accept_upstream(w), err;
	char buf[8];

	(void)state;
	assert_int_equal(shutdown(g, SHUT_WR), 0);
	assert_int_equal(read_to_end(w, u, buf, sizeof(buf), &err), 0);  /* FIN passed on */
	turn_until(w, no_flows, NULL, 3000);  /* the upstream never answers */
	assert_int_equal(stats(w).reaped_idle, 1);
	assert_int_equal(read_to_end(w, g, buf, sizeof(buf), &err), 0);
	close(g);
	close(u);
	stop(w);
}

static void test_full_table_refuses_the_next_flow(void **state)
{
	struct world *w = start(0, 0, 2, 0);
	int g1 = guest_flow(w, 40010, w->port), g2 = guest_flow(w, 40011, w->port);
	int g3 = guest_flow(w, 40012, w->port), err;
	char buf[8];
	struct mitm_stats st;

	(void)state;
	assert_int_equal(w->aborts, 1);
	assert_int_equal(ntohs(w->abort_src.sin_port), 40012);
	assert_int_equal(read_to_end(w, g3, buf, sizeof(buf), &err), 0);
	st = stats(w);
	assert_int_equal(st.dropped_full, 1);
	assert_int_equal(st.flows_active, 2);
	assert_true(st.bytes_per_flow_idle >= sizeof(struct mitm_flow));
	assert_int_equal(st.bytes_per_flow_max, st.bytes_per_flow_idle + 2 * MITM_BUF_CAP);
	close(g1);
	close(g2);
	close(g3);
	stop(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_4mib_each_way_intact),
		cmocka_unit_test(test_half_close_guest_first),
		cmocka_unit_test(test_half_close_upstream_first),
		cmocka_unit_test(test_refused_connect_resets_the_guest),
		cmocka_unit_test(test_connect_timeout_resets_the_guest),
		cmocka_unit_test(test_upstream_reset_resets_the_guest),
		cmocka_unit_test(test_guest_reset_resets_the_upstream),
		cmocka_unit_test(test_backpressure_guest_not_reading),
		cmocka_unit_test(test_backpressure_upstream_not_reading),
		cmocka_unit_test(test_300_concurrent_flows_to_one_destination),
		cmocka_unit_test(test_idle_flow_is_reaped),
		cmocka_unit_test(test_talking_flow_is_not_reaped),
		cmocka_unit_test(test_half_closed_silent_flow_is_reaped),
		cmocka_unit_test(test_full_table_refuses_the_next_flow),
	};
	struct rlimit rl;

	/* 300 flows are 900 fds (guest pair + upstream + accepted). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
