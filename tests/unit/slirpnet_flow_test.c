/* tests/unit/slirpnet_flow_test.c - slirpnet end to end, in-process, no VM and no network: a
 * tiny fake guest TCP/UDP stack written here drives slirpnet_input_frame() and reads what
 * comes back; the flow handler is an in-process echo; DNS goes to a UDP server bound on
 * 127.0.0.1 by the test. Proves: two flows to one destination kept apart, 1 MiB each way
 * intact, FIN both ways and the NAT entry reaped, denied and always-blocked destinations get
 * RST and no fd, DNS A forwarded (its answer reported, a malformed one relayed but not) and
 * AAAA answered empty, TCP DNS to the alias is a flow (other alias ports are not), an aborted
 * flow resets the guest in window and silences libslirp, stray UDP/ICMP/IPv6 counted,
 * half-open flows reaped, a full table resets, 200 concurrent flows, a host forward. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/slirpnet_world.h"

/* ---- tests ---- */


static bool both_flows_finished(struct world *w)
{
	for (int i = 0; i < 2; i++) {
		struct conn *c = w->conns[i];
		if (!c->got_fin || c->rx_len != c->tx_len || !c->sent_fin || c->snd_una != c->snd_nxt)
			return false;
	}
	return true;
}

static bool nat_reaped(struct world *w)
{
	struct slirpnet_stats st;
	slirpnet_stats(w->sn, &st);
	return st.flows_active == 0;
}

static void two_flows_to_one_destination_carry_1mib_each_way(void **state)
{
	struct world *w = *state;
	size_t len = 1 << 20;
	uint8_t *a = malloc(len), *b = malloc(len);
	struct slirpnet_stats st;

	assert_non_null(a);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++) {
		a[i] = (uint8_t)(i * 7 + 1);
		b[i] = (uint8_t)(i * 13 + 5 + (i >> 11));
	}
	struct conn *ca = conn_open(w, 40001, WEB, 443, a, len);
	struct conn *cb = conn_open(w, 40002, WEB, 443, b, len);
	run_until(w, both_flows_finished, 60000);

	assert_int_equal(w->nflows, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ntohl(w->echo[i].dst.sin_addr.s_addr), WEB);
		assert_int_equal(ntohs(w->echo[i].dst.sin_port), 443);
		assert_int_equal(ntohl(w->echo[i].src.sin_addr.s_addr), GUEST);
	}
	assert_int_not_equal(w->echo[0].src.sin_port, w->echo[1].src.sin_port);
	assert_false(ca->rst || cb->rst);
	assert_memory_equal(ca->rx, a, len); /* each flow got back exactly its own bytes */
	assert_memory_equal(cb->rx, b, len);

	run_until(w, nat_reaped, 5000); /* FIN both ways, then linger, then the entry is gone */
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_opened, 2);
	assert_int_equal(st.slots_registered, 2);
	assert_int_equal(st.drops[SLIRPNET_DROP_OUT_NO_FLOW], 0);
	assert_true(st.bytes_per_flow > 0 && st.bytes_per_flow < 128);
	free(a);
	free(b);
}

static void step_n(struct world *w, int n)
{
	while (n-- > 0)
		step(w);
}

static void denied_and_blocked_destinations_get_rst_and_no_fd(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	struct conn *denied = conn_open(w, 41000, WEB, 25, NULL, 0);
	struct conn *meta = conn_open(w, 41001, 0xa9fea9feu, 80, NULL, 0);
	struct conn *slot = conn_open(w, 41002, 0x0a000264u, 1024, NULL, 0);
	struct conn *loop = conn_open(w, 41003, 0x7f000001u, 80, NULL, 0);

	step_n(w, 5);
	assert_true(denied->rst && meta->rst && slot->rst && loop->rst);
	assert_int_equal(w->nflows, 0);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_DENIED], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_BLOCKED], 3);
	assert_int_equal(st.flows_opened, 0);
	assert_int_equal(st.flows_active, 0);
}

static void dns_a_is_forwarded_and_reported_and_aaaa_answered_empty(void **state)
{
	struct world *w = *state;
	uint8_t q[64];
	size_t n = dns_query(q, 0x1234, 1);
	struct slirpnet_stats st;

	guest_udp(w, GUEST, DNSA, 53, q, n);
	run_until(w, got_udp_reply, 5000);
	assert_int_equal(w->dns_seen, 1);
	assert_int_equal(w->udp_reply_from, DNSA);
	assert_int_equal(rd16(w->udp_reply), 0x1234);           /* the guest's own id */
	assert_int_equal(rd16(w->udp_reply + 6), 1);            /* one answer */
	assert_memory_equal(w->udp_reply + w->udp_reply_len - 4, "\xc0\x00\x02\x01", 4);
	assert_int_equal(w->learned, 1);                        /* and the policy was told */
	assert_string_equal(w->learned_name, "example.test");
	assert_int_equal(w->learned_n, 1);
	assert_int_equal(ntohl(w->learned_addr.s_addr), 0xc0000201);
	assert_int_equal(w->learned_ttl, 60);

	w->udp_reply_len = 0;
	n = dns_query(q, 0x5678, 28);
	guest_udp(w, GUEST, DNSA, 53, q, n);
	step(w);
	assert_true(got_udp_reply(w));
	assert_int_equal(w->dns_seen, 1);                       /* AAAA never went upstream */
	assert_int_equal(rd16(w->udp_reply), 0x5678);
	assert_int_equal(w->udp_reply[3] & 0x0f, 0);            /* NOERROR */
	assert_int_equal(rd16(w->udp_reply + 6), 0);            /* no answers */

	guest_udp(w, GUEST, DNSA, 53, q, 11);                    /* truncated header */
	q[12] = 0xc0;                                            /* compression in the question */
	guest_udp(w, GUEST, DNSA, 53, q, n);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_DNS_QUERY], 2);
	assert_int_equal(st.dns_forwarded, 1);
	assert_int_equal(st.dns_answered, 1);
	assert_int_equal(st.dns_aaaa_empty, 1);
	assert_int_equal(w->learned, 1);                        /* AAAA taught nothing */

	w->dns_bad = true;                                       /* a malformed A reply: */
	w->udp_reply_len = 0;
	n = dns_query(q, 0x4321, 1);
	guest_udp(w, GUEST, DNSA, 53, q, n);
	run_until(w, got_udp_reply, 5000);
	assert_int_equal(rd16(w->udp_reply), 0x4321);
	assert_int_equal(w->udp_reply_len, n + 16 + 1);          /* relayed as it came */
	assert_int_equal(w->learned, 1);                        /* but taught nothing */
}

static void icmp_echo(struct world *w, uint32_t dst)
{
	uint8_t f[ETH_HDR + 28];
	size_t n = frame_build_udp(f, sizeof(f), gmac, hmac, GUEST, 0, dst, 0, NULL, 0);
	uint8_t *ip = f + ETH_HDR, *ic = ip + 20;

	assert_int_equal(n, sizeof(f));
	ip[9] = IPP_ICMP;
	wr16(ip + 10, 0);
	wr16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	memset(ic, 0, 8);
	ic[0] = 8;
	wr16(ic + 4, 1);
	wr16(ic + 2, csum_fold(csum_add(0, ic, 8)));
	slirpnet_input_frame(w->sn, f, n);
}

static void stray_traffic_is_dropped_and_counted(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	uint8_t f[128];
	struct conn ghost = { .sport = 42000, .dst = WEB, .dport = 443 };

	guest_udp(w, GUEST, 0x08080808u, 123, (const uint8_t *)"ntp?", 4);
	guest_udp(w, 0, 0xffffffffu, 67, (const uint8_t *)"dhcp", 4);
	guest_udp(w, 0x0a000299u, DNSA, 53, (const uint8_t *)"spoof", 5);
	icmp_echo(w, 0x08080808u);
	icmp_echo(w, GW);
	guest_tcp(w, &ghost, 1, TCPF_ACK, NULL, 0);
	size_t n = frame_build_tcp(f, sizeof(f), gmac, hmac, GUEST, 1, WEB, 80, 1, 0, TCPF_SYN, 1, NULL, 0);
	wr16(f + 12, ETHT_IPV6);
	slirpnet_input_frame(w->sn, f, n);
	slirpnet_input_frame(w->sn, f, 3);
	step_n(w, 5);

	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_UDP_POLICY], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_DHCP], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_IP_SRC], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_ICMP_POLICY], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_NO_FLOW], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_IPV6], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_ETH_SHORT], 1);
	assert_int_equal(w->icmp_replies, 1); /* only the echo to the gateway was answered */
	assert_int_equal(st.frames_out, 1);
	assert_int_equal(w->dns_seen, 0);
}

static bool established(struct world *w) { return w->nflows == 1 && w->conns[w->nconns - 1]->synack; }

static void half_open_flows_are_reaped_and_a_full_table_resets(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	struct conn *a = conn_open(w, 40010, WEB, 80, NULL, 0);
	a->mute = true;
	struct conn *b = conn_open(w, 40011, WEB, 80, NULL, 0);
	b->mute = true;
	struct conn *c = conn_open(w, 40012, WEB, 80, NULL, 0);

	step_n(w, 3);
	assert_true(c->rst);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_FLOW_TABLE_FULL], 1);
	assert_int_equal(st.flows_pending, 2);
	run_until(w, nat_reaped, 2000); /* half_open_ms = 50 */
	struct conn *d = conn_open(w, 40013, WEB, 80, NULL, 0);
	run_until(w, established, 2000);
	assert_false(d->rst);
	assert_int_equal(ntohs(w->echo[0].src.sin_port), 40013);
}

static bool all_finished(struct world *w)
{
	for (int i = 0; i < w->nconns; i++) {
		struct conn *c = w->conns[i];
		if (!c->got_fin || c->rx_len != c->tx_len || !c->sent_fin || c->snd_una != c->snd_nxt)
			return false;
	}
	return true;
}

/* A full table of closed, lingering flows must not refuse a new connection. */
static void lingering_entries_give_way_to_new_flows(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	static const uint8_t tx[3] = "abc";

	conn_open(w, 46000, WEB, 443, tx, 3);
	conn_open(w, 46001, WEB, 443, tx, 3);
	run_until(w, all_finished, 5000);
	struct conn *c = conn_open(w, 46002, WEB, 443, tx, 3);
	run_until(w, all_finished, 5000);
	assert_false(c->rst);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.linger_evicted, 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_FLOW_TABLE_FULL], 0);
	assert_int_equal(st.flows_opened, 3);
}

static void two_hundred_concurrent_flows_stay_apart(void **state)
{
	struct world *w = *state;
	enum { N = 200, LEN = 3000 };
	static uint8_t tx[N][LEN];
	struct slirpnet_stats st;

	for (int i = 0; i < N; i++) {
		for (int j = 0; j < LEN; j++)
			tx[i][j] = (uint8_t)(i * 31 + j);
		conn_open(w, (uint16_t)(45000 + i), WEB + (uint32_t)(i % 3), 443, tx[i], LEN);
	}
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_pending, N);
	run_until(w, all_finished, 30000);
	for (int i = 0; i < N; i++) {
		assert_false(w->conns[i]->rst);
		assert_memory_equal(w->conns[i]->rx, tx[i], LEN);
	}
	assert_int_equal(w->nflows, N);
	run_until(w, nat_reaped, 5000);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_opened, N);
	assert_int_equal(st.stale_accepts, 0);
	assert_int_equal(st.drops[SLIRPNET_DROP_OUT_NO_FLOW], 0);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_NO_FLOW], 0);
}

static bool guest_server_done(struct world *w)
{
	return w->nconns == 1 && w->conns[0]->got_fin && w->conns[0]->rx_len == 4;
}

/* -p 127.0.0.1:P:8080 in miniature: a host client talks to a server in the guest, through
 * libslirp's host forwarding; both directions and both FINs arrive. */
static void host_forward_reaches_the_guest_server(void **state)
{
	struct world *w = *state;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = { htonl(0x7f000001) } };
	socklen_t al = sizeof(a);
	struct ml_err e;
	char got[64] = { 0 };
	size_t have = 0;
	bool sent = false, eof = false;
	int probe = socket(AF_INET, SOCK_STREAM, 0), cl;
	int64_t end = now_ms() + 5000;

	/* a free port: bind 0, read it back, release it for slirp */
	assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&a, &al), 0);
	close(probe);
	int bound = 0;
	assert_int_equal(slirpnet_add_hostfwd(w->sn, a.sin_addr, ntohs(a.sin_port), 8080, &bound, &e), 0);
	assert_int_equal(bound, ntohs(a.sin_port));
	cl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(connect(cl, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	while (!(eof && guest_server_done(w))) {
		if (now_ms() > end)
			fail_msg("timed out: client has %zu bytes, eof %d", have, eof);
		step(w);
		if (!sent && write(cl, "ping", 4) == 4) {
			sent = true;
			shutdown(cl, SHUT_WR);
		}
		ssize_t n = read(cl, got + have, sizeof(got) - 1 - have);
		if (n > 0)
			have += (size_t)n;
		eof |= n == 0;
	}
	assert_string_equal(got, (const char *)hello);
	assert_memory_equal(w->conns[0]->rx, "ping", 4);
	close(cl);
}

/* A resolver retrying over TCP after a TC reply: the alias's port 53 is an ordinary flow, asked
 * of connect_check first; every other port of the alias stays part of the blocked vnet. */
static void tcp_dns_to_the_alias_is_a_flow_and_other_alias_ports_are_not(void **state)
{
	struct world *w = *state;
	static const uint8_t query[] = "\0\x1d\x12\x34\x01\0\0\x01\0\0\0\0\0\0\7example\4test\0\0\1\0\1";
	struct slirpnet_stats st;

	struct conn *c = conn_open(w, 40300, DNSA, 53, query, sizeof(query) - 1);
	run_until(w, all_finished, 5000);
	assert_int_equal(w->nflows, 1);
	assert_int_equal(ntohl(w->echo[0].dst.sin_addr.s_addr), DNSA);
	assert_int_equal(ntohs(w->echo[0].dst.sin_port), 53);
	assert_int_equal(w->checks, 1);
	assert_int_equal(ntohl(w->last_check.sin_addr.s_addr), DNSA);
	assert_int_equal(ntohs(w->last_check.sin_port), 53);
	assert_memory_equal(c->rx, query, sizeof(query) - 1);
	assert_false(c->rst);

	struct conn *other = conn_open(w, 40301, DNSA, 54, NULL, 0);
	step_n(w, 5);
	assert_true(other->rst);
	assert_int_equal(w->nflows, 1);
	assert_int_equal(w->checks, 1); /* refused before any policy was asked */
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_BLOCKED], 1);
	assert_int_equal(w->dns_seen, 0); /* nothing of it went to the UDP upstream */
}

static const uint8_t ping[] = "hello";

/* The guest's "hello" acknowledged and echoed back: both directions have carried data. */
static bool ping_echoed(struct world *w)
{
	struct conn *c = w->conns[0];
	return w->nflows == 1 && c->snd_una == c->isn + sizeof(ping) && c->rx_len == sizeof(ping) - 1;
}

static bool down_received(struct world *w) { return w->conns[0]->rx_len == sizeof(ping) - 1 + 3000; }

/* The handler learns that upstream reset: the guest must see a reset too, at a sequence number
 * it accepts, and libslirp must forget the connection. Data libslirp sent stays unacknowledged
 * (the guest does not ACK), so a surviving tcb would retransmit it; the handler's close() would
 * make it send a FIN. Neither may reach the guest. */
static void abort_resets_the_guest_in_window_and_silences_slirp(void **state)
{
	struct world *w = *state;
	static uint8_t down[3000];
	struct slirpnet_stats st;
	struct conn *c = conn_open(w, 40400, WEB, 443, ping, sizeof(ping) - 1);

	c->hold = true;
	run_until(w, ping_echoed, 5000);
	struct echo *e = &w->echo[0];
	e->done = true; /* the test drives this fd itself */
	c->no_ack = true;
	memset(down, 'd', sizeof(down));
	assert_int_equal(write(e->fd, down, sizeof(down)), (ssize_t)sizeof(down));
	run_until(w, down_received, 5000);

	struct sockaddr_in other = e->src;
	other.sin_port = htons(40999);                /* no such flow: nothing happens */
	slirpnet_flow_abort(w->sn, &other, &e->dst);
	other = e->src;
	other.sin_addr.s_addr = htonl(GUEST + 1);     /* not the guest: nothing either */
	slirpnet_flow_abort(w->sn, &other, &e->dst);
	step(w);
	assert_false(c->rst);

	slirpnet_flow_abort(w->sn, &e->src, &e->dst);
	slirpnet_flow_abort(w->sn, &e->src, &e->dst); /* twice: the second finds it closed */
	close(e->fd);
	step(w);
	assert_true(c->rst);
	assert_int_equal(c->rst_seq, c->rcv_nxt); /* exactly where the guest expects it */

	int64_t end = now_ms() + 3000; /* slirp's retransmit timer is >= 1 s */
	while (now_ms() < end)
		step(w);
	assert_int_equal(c->after_rst, 0);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_aborted, 1);
	assert_int_equal(st.flows_active, 0); /* lingered 50 ms, then ended */
	assert_int_equal(st.drops[SLIRPNET_DROP_OUT_NO_FLOW], 0);
}

/* A runtime dir too long for "<dir>/flow.sock" in a socket address (a long state path): the
 * socket goes into a slirpnet-* temp dir and the runtime dir becomes a symlink to it, which is
 * how `matchlock gc` finds it after a crash; slirpnet_free removes both. */
static void a_long_runtime_dir_links_to_a_temp_dir(void **state)
{
	(void)state;
	char base[] = "/tmp/slirpnet-test-XXXXXX", path[256], target[PATH_MAX], sock[PATH_MAX + 16];
	struct stat st;
	void *w = NULL;
	assert_non_null(mkdtemp(base));
	snprintf(path, sizeof(path), "%s/%0100d", base, 0);
	world_runtime_dir = path;
	setup(&w);
	world_runtime_dir = NULL;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_non_null(strstr(target, "/slirpnet-"));
	snprintf(sock, sizeof(sock), "%s/flow.sock", target);
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	teardown(&w);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(rmdir(base), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(two_flows_to_one_destination_carry_1mib_each_way, setup, teardown),
		cmocka_unit_test_setup_teardown(denied_and_blocked_destinations_get_rst_and_no_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(dns_a_is_forwarded_and_reported_and_aaaa_answered_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(tcp_dns_to_the_alias_is_a_flow_and_other_alias_ports_are_not, setup,
						teardown),
		cmocka_unit_test_setup_teardown(abort_resets_the_guest_in_window_and_silences_slirp, setup, teardown),
		cmocka_unit_test_setup_teardown(stray_traffic_is_dropped_and_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(half_open_flows_are_reaped_and_a_full_table_resets, setup_small, teardown),
		cmocka_unit_test_setup_teardown(lingering_entries_give_way_to_new_flows, setup_small_long_linger, teardown),
		cmocka_unit_test_setup_teardown(two_hundred_concurrent_flows_stay_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(host_forward_reaches_the_guest_server, setup, teardown),
		cmocka_unit_test(a_long_runtime_dir_links_to_a_temp_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
