/* tests/unit/rpc_net_test.c - the network thread's control calls and events (rpc/net.h),
 * called from this (another) thread while it runs, with a socketpair standing in for the
 * VM engine's frame stream: the allow-list read and changed (added/removed lists, the current
 * list, a bad entry changing nothing), port forwards replaced at run time (port 0 reported
 * as bound, the previous set closed, duplicates and a taken port refused in the reference's
 * words, nothing left after a failure), and per-flow events: a SYN the policy refuses and a
 * DNS question it refuses each make the events fd readable with the verdict, a REFUSED
 * answer comes back on the stream, and a flood past the queue is dropped and counted. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/cleanup.h"
#include "base/loop.h"
#include "rpc/net.h"
#include "slirpnet/frame.h"

#define GUEST 0x0a00020fu
#define ALIAS 0x0a000203u

static const uint8_t gmac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
static const uint8_t hmac[6] = { 0x52, 0x55, 10, 0, 2, 2 };

struct t {
	struct net *n;
	int engine;  /* our end of the frame stream (the VM's side) */
};

static int setup(void **state)
{
	static char *dns[] = { "127.0.0.1", NULL }, *allow[] = { "web.test", NULL };
	struct net_publish pub = { .addr = { htonl(INADDR_LOOPBACK) }, .host_port = 0, .guest_port = 80 };
	struct net_opts o = { .mtu = 1500, .dns = dns, .allow_hosts = allow, .block_private_ips = true,
			      .publish = &pub, .n_publish = 1 };
	struct t *t = calloc(1, sizeof(*t));
	struct ml_err e = { 0 };
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	t->engine = sv[0];
	if (net_start(sv[1], &o, &t->n, &e) < 0)
		fail_msg("net_start: %s", e.msg);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	net_stop(t->n);
	close(t->engine);
	free(t);
	return 0;
}

static size_t strv_n(char **v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static void the_allow_list_is_read_and_changed_from_another_thread(void **state)
{
	struct t *t = *state;
	struct ml_err e = { 0 };
	char **changed = NULL, **cur = NULL;
	char *add[] = { "api.test", "web.test" }, *bad[] = { "ok.test", "*github.com" }, *del[] = { "web.test" };

	assert_int_equal(net_allow_list(t->n, NET_ALLOW_GET, NULL, 0, &changed, &cur, &e), 0);
	assert_null(changed);
	assert_int_equal(strv_n(cur), 1);
	assert_string_equal(cur[0], "web.test");
	strv_free(cur);
	assert_int_equal(net_allow_list(t->n, NET_ALLOW_ADD, add, 2, &changed, &cur, &e), 0);
	assert_int_equal(strv_n(changed), 1);
	assert_string_equal(changed[0], "api.test");
	assert_int_equal(strv_n(cur), 2);
	strv_free(changed);
	strv_free(cur);
	assert_int_equal(net_allow_list(t->n, NET_ALLOW_ADD, bad, 2, &changed, &cur, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "invalid allow-host \"*github.com\""));
	assert_null(changed);
	assert_null(cur);
	assert_int_equal(net_allow_list(t->n, NET_ALLOW_DELETE, del, 1, &changed, &cur, &e), 0);
	assert_int_equal(strv_n(changed), 1);
	assert_int_equal(strv_n(cur), 1);
	assert_string_equal(cur[0], "api.test");
	strv_free(changed);
	strv_free(cur);
	assert_int_equal(net_allow_list(t->n, NET_ALLOW_SET, NULL, 0, NULL, &cur, &e), 0);
	assert_int_equal(strv_n(cur), 0);
	strv_free(cur);
}

static int connect_lo(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr = { htonl(INADDR_LOOPBACK) } };
	int fd = socket(AF_INET, SOCK_STREAM, 0), r;

	r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	return r;
}

static void forwards_are_replaced_at_run_time(void **state)
{
	struct t *t = *state;
	struct ml_err e = { 0 };
	struct net_publish want[2] = { { { htonl(INADDR_LOOPBACK) }, 0, 80 }, { { htonl(INADDR_LOOPBACK) }, 0, 81 } };
	struct net_publish got[2], again[2];
	char msg[160];

	assert_int_equal(net_forwards_set(t->n, want, 2, got, &e), 0);
	assert_true(got[0].host_port > 0 && got[1].host_port > 0 && got[0].host_port != got[1].host_port);
	assert_int_equal(got[0].guest_port, 80);
	assert_int_equal(connect_lo(got[0].host_port), 0);
	assert_int_equal(connect_lo(got[1].host_port), 0);
	/* the same ports again: the previous listeners close first, so they can be reused */
	assert_int_equal(net_forwards_set(t->n, got, 2, again, &e), 0);
	assert_int_equal(again[0].host_port, got[0].host_port);
	/* duplicates are refused before anything is touched */
	struct net_publish dup[2] = { got[0], got[0] };
	assert_int_equal(net_forwards_set(t->n, dup, 2, again, &e), -EINVAL);
	snprintf(msg, sizeof(msg), "bind local port-forward listener: duplicate listen address 127.0.0.1:%d",
		 got[0].host_port);
	assert_string_equal(e.msg, msg);
	assert_int_equal(connect_lo(got[0].host_port), 0);   /* still there */
	/* a port someone else holds */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = { htonl(INADDR_LOOPBACK) } };
	socklen_t al = sizeof(a);
	int busy = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(busy, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(busy, 1), 0);
	assert_int_equal(getsockname(busy, (struct sockaddr *)&a, &al), 0);
	struct net_publish taken[2] = { { { htonl(INADDR_LOOPBACK) }, 0, 80 },
					{ { htonl(INADDR_LOOPBACK) }, ntohs(a.sin_port), 81 } };
	assert_int_equal(net_forwards_set(t->n, taken, 2, again, &e), -EADDRINUSE);
	snprintf(msg, sizeof(msg), "bind local port-forward listener 127.0.0.1:%d: listen tcp 127.0.0.1:%d: "
		 "bind: address already in use", ntohs(a.sin_port), ntohs(a.sin_port));
	assert_string_equal(e.msg, msg);
	assert_int_equal(connect_lo(got[0].host_port), -1);  /* nothing is left */
	close(busy);
	/* and an empty set is fine */
	assert_int_equal(net_forwards_set(t->n, NULL, 0, NULL, &e), 0);
}

/* One Ethernet frame into the stream, as QEMU writes it (4-byte big-endian length). */
static void send_frame(struct t *t, const uint8_t *f, size_t len)
{
	uint8_t b[2048];

	wr32(b, (uint32_t)len);
	memcpy(b + 4, f, len);
	for (size_t off = 0; off < len + 4;) {
		ssize_t w = write(t->engine, b + off, len + 4 - off);
		if (w < 0 && errno == EAGAIN) {
			poll(&(struct pollfd){ .fd = t->engine, .events = POLLOUT }, 1, 1000);
			continue;
		}
		assert_true(w > 0);
		off += (size_t)w;
	}
}

static void send_syn(struct t *t, uint32_t dst, uint16_t sport, uint16_t dport)
{
	uint8_t f[128];
	size_t n = frame_build_tcp(f, sizeof(f), gmac, hmac, GUEST, sport, dst, dport, 1000, 0, TCPF_SYN, 65535, NULL, 0);

	send_frame(t, f, n);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void refused_flows_and_questions_are_events(void **state)
{
	struct t *t = *state;
	int efd = net_events_fd(t->n);
	struct net_event ev[4];
	uint64_t dropped = 1;
	uint8_t q[64], f[256], in[4096];
	size_t qn = 12;
	static const char name[] = "\6tunnel\4evil\4test";

	assert_false(readable(efd, 0));
	send_syn(t, 0x0a63000a, 40001, 80);                /* 10.99.0.10: private */
	assert_true(readable(efd, 3000));
	assert_int_equal(net_events_read(t->n, ev, 4, &dropped), 1);
	assert_int_equal(dropped, 0);
	assert_true(ev[0].blocked);
	assert_false(ev[0].dns);
	assert_string_equal(ev[0].reason, "private address");
	assert_int_equal(ntohl(ev[0].dst.sin_addr.s_addr), 0x0a63000a);
	assert_int_equal(ntohs(ev[0].dst.sin_port), 80);
	assert_true(ev[0].unix_ms > 1600000000000LL);
	assert_false(readable(efd, 0));                    /* drained */

	/* a TXT question for a name not in the list: REFUSED on the stream, and an event */
	memset(q, 0, 12);
	wr16(q, 0x4321);
	q[2] = 1;
	wr16(q + 4, 1);
	memcpy(q + qn, name, sizeof(name));
	qn += sizeof(name);
	wr16(q + qn, 16);
	wr16(q + qn + 2, 1);
	qn += 4;
	send_frame(t, f, frame_build_udp(f, sizeof(f), gmac, hmac, GUEST, 5353, ALIAS, 53, q, qn));
	assert_true(readable(efd, 3000));
	assert_int_equal(net_events_read(t->n, ev, 4, NULL), 1);
	assert_true(ev[0].dns && ev[0].blocked);
	assert_string_equal(ev[0].host, "tunnel.evil.test");
	assert_int_equal(ev[0].qtype, 16);
	/* the answer on the stream: [len][eth][ip][udp][dns with rcode 5]; the priming ARP and
	 * nothing else may come first */
	bool refused = false;
	for (int tries = 0; tries < 50 && !refused; tries++) {
		ssize_t r;
		if (!readable(t->engine, 100))
			continue;
		r = read(t->engine, in, sizeof(in));
		for (ssize_t off = 0; off + 4 <= r;) {
			uint32_t len = rd32(in + off);
			const uint8_t *fr = in + off + 4;
			if (len >= 14 + 20 + 8 + 12 && rd16(fr + 12) == 0x0800 && fr[23] == 17 &&
			    rd16(fr + 14 + 20 + 8) == 0x4321)
				refused = (fr[14 + 20 + 8 + 3] & 0x0f) == 5;
			off += 4 + (ssize_t)len;
		}
	}
	assert_true(refused);
}

static void a_flood_of_events_is_dropped_and_counted(void **state)
{
	struct t *t = *state;
	static struct net_event ev[2048];
	uint64_t dropped = 0;
	size_t got = 0;
	int64_t end = ml_now_ms() + 10000;

	for (int i = 0; i < 1100; i++)
		send_syn(t, 0x0a63000a, (uint16_t)(20000 + i), 80);
	/* wait until the thread has seen them all: 1024 queued, 76 dropped */
	while (ml_now_ms() < end && dropped < 76) {
		usleep(20000);
		net_events_read(t->n, ev, 0, &dropped);
	}
	got = net_events_read(t->n, ev, 2048, &dropped);
	assert_int_equal(got, 1024);
	assert_int_equal(dropped, 76);
	assert_false(readable(net_events_fd(t->n), 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_allow_list_is_read_and_changed_from_another_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(forwards_are_replaced_at_run_time, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_flows_and_questions_are_events, setup, teardown),
		cmocka_unit_test_setup_teardown(a_flood_of_events_is_dropped_and_counted, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
