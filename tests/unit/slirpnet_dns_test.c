/* tests/unit/slirpnet_dns_test.c - slirpnet's UDP DNS forwarder against a fake upstream on
 * 127.0.0.1 (tests/unit/slirpnet_world.h): a question the policy refuses gets REFUSED at once,
 * whatever its type, and nothing reaches the upstream; queries in flight leave from distinct
 * source ports with ids that are not the guest's and not a sequence, and each answer goes back
 * with its guest id; a guest that does not drain its NIC cannot queue more than
 * out_queue_bytes; host forwards bind port 0 to a free port and can be removed. */
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
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/slirpnet_world.h"

static const char refused_name[] = "\6tunnel\7refused\4test";

static void refused_questions_get_refused_and_nothing_goes_upstream(void **state)
{
	static const uint16_t types[] = { 1, 16, 28, 65 };  /* A, TXT, AAAA, HTTPS */
	struct world *w = *state;
	struct slirpnet_stats st;
	uint8_t q[128];

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t n = dns_query_for(q, (uint16_t)(0x100 + i), types[i], refused_name, sizeof(refused_name));
		w->udp_reply_len = 0;
		guest_udp(w, GUEST, DNSA, 53, q, n);
		step(w);
		assert_true(got_udp_reply(w));
		assert_int_equal(rd16(w->udp_reply), 0x100 + i);       /* the guest's id */
		assert_int_equal(w->udp_reply[2] & 0x80, 0x80);         /* a response */
		assert_int_equal(w->udp_reply[3] & 0x0f, 5);            /* REFUSED */
		assert_int_equal(rd16(w->udp_reply + 6), 0);            /* no answers */
		assert_int_equal(w->udp_reply_len, n);                  /* header + question */
		assert_memory_equal(w->udp_reply + 12, q + 12, n - 12);
	}
	for (int i = 0; i < 20; i++)
		step(w);
	assert_int_equal(w->dns_seen, 0);                               /* never left the host */
	assert_int_equal(w->dns_checks, 4);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.dns_refused, 4);
	assert_int_equal(st.dns_forwarded, 0);
	assert_int_equal(st.dns_aaaa_empty, 0);                        /* refused before AAAA */
	/* an allowed name still goes out */
	size_t n = dns_query(q, 0x4242, 1);
	w->udp_reply_len = 0;
	guest_udp(w, GUEST, DNSA, 53, q, n);
	run_until(w, got_udp_reply, 5000);
	assert_int_equal(w->dns_seen, 1);
	assert_int_equal(w->udp_reply[3] & 0x0f, 0);
}

static bool all_seen(struct world *w) { return w->dns_seen == 8; }

static void queries_leave_from_distinct_ports_with_random_ids(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	uint8_t q[128];
	int seq = 0, same = 0;

	w->dns_hold = true;  /* all eight stay in flight at once */
	for (int i = 0; i < 8; i++) {
		size_t n = dns_query(q, (uint16_t)(0x7000 + i), 1);
		guest_udp(w, GUEST, DNSA, 53, q, n);
	}
	run_until(w, all_seen, 5000);
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < i; j++) {
			if (w->dns_up_port[i] == w->dns_up_port[j])
				fail_msg("queries %d and %d left from the same port %u", j, i, w->dns_up_port[i]);
			same += w->dns_up_id[i] == w->dns_up_id[j];
		}
	for (int i = 1; i < 8; i++)
		seq += (uint16_t)(w->dns_up_id[i] - w->dns_up_id[i - 1]) == (uint16_t)(w->dns_up_id[1] - w->dns_up_id[0]);
	for (int i = 0; i < 8; i++)
		same += w->dns_up_id[i] == 0x7000 + i;  /* the guest's own id sent upstream */
	assert_int_equal(same, 0);
	assert_true(seq < 7);  /* not a constant step (the old forwarder's +0x9e37) */
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.dns_forwarded, 8);
}

static bool four_replies(struct world *w) { return w->n_udp_replies == 4; }

static void answers_go_back_with_the_guests_ids(void **state)
{
	struct world *w = *state;
	uint8_t q[128];
	int found = 0;

	for (int i = 0; i < 4; i++) {
		size_t n = dns_query(q, (uint16_t)(0x5150 + i), 1);
		guest_udp(w, GUEST, DNSA, 53, q, n);
	}
	run_until(w, four_replies, 5000);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			found += w->udp_reply_ids[j] == 0x5150 + i;
	assert_int_equal(found, 4);
	for (int i = 0; i < 4; i++)
		assert_true(w->dns_up_id[i] < 0x5150 || w->dns_up_id[i] > 0x5153);
}

static void a_guest_that_does_not_drain_cannot_queue_more_than_its_bytes(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	uint8_t q[128], f[2048];
	size_t n = dns_query(q, 1, 28), frame = 14 + 20 + 8 + n;
	ssize_t len;

	/* AAAA is answered at once; nobody calls slirpnet_output_frame meanwhile */
	for (int i = 0; i < 200; i++)
		guest_udp(w, GUEST, DNSA, 53, q, n);
	slirpnet_stats(w->sn, &st);
	assert_true(st.out_queued_bytes <= 4096);
	assert_int_equal(st.out_queued, 4096 / frame);
	assert_int_equal(st.drops[SLIRPNET_DROP_OUT_QUEUE_FULL], 200 - 4096 / frame);
	while ((len = slirpnet_output_frame(w->sn, f, sizeof(f))) > 0)
		;
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.out_queued_bytes, 0);
	guest_udp(w, GUEST, DNSA, 53, q, n);                  /* room again */
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.out_queued, 1);
}

static void host_forward_on_port_0_reports_its_port_and_can_be_removed(void **state)
{
	struct world *w = *state;
	struct in_addr lo = { htonl(0x7f000001) };
	struct ml_err e;
	int port = 0, port2 = 0, cl;

	assert_int_equal(slirpnet_add_hostfwd(w->sn, lo, 0, 8080, &port, &e), 0);
	assert_true(port > 0);
	/* the port is really listening */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = lo, .sin_port = htons((uint16_t)port) };
	cl = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cl, (struct sockaddr *)&a, sizeof(a)), 0);
	close(cl);
	/* the same port again: taken, and the message says so in Go's words */
	assert_int_equal(slirpnet_add_hostfwd(w->sn, lo, port, 8081, &port2, &e), -EADDRINUSE);
	char want[96];
	snprintf(want, sizeof(want), "listen tcp 127.0.0.1:%d: bind: address already in use", port);
	assert_string_equal(e.msg, want);
	assert_int_equal(slirpnet_remove_hostfwd(w->sn, lo, port), 0);
	assert_int_equal(slirpnet_remove_hostfwd(w->sn, lo, port), -ENOENT);
	cl = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cl, (struct sockaddr *)&a, sizeof(a)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	close(cl);
	/* and it can be bound again */
	assert_int_equal(slirpnet_add_hostfwd(w->sn, lo, port, 8080, &port2, &e), 0);
	assert_int_equal(port2, port);
}

static int setup_tiny_queue(void **state)
{
	world_out_queue_bytes = 4096;
	int r = setup(state);
	world_out_queue_bytes = 0;
	return r;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(refused_questions_get_refused_and_nothing_goes_upstream, setup, teardown),
		cmocka_unit_test_setup_teardown(queries_leave_from_distinct_ports_with_random_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(answers_go_back_with_the_guests_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(a_guest_that_does_not_drain_cannot_queue_more_than_its_bytes,
						setup_tiny_queue, teardown),
		cmocka_unit_test_setup_teardown(host_forward_on_port_0_reports_its_port_and_can_be_removed, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
