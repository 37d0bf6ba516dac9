/* tests/unit/mitm_dns_test.c - which DNS questions may leave, and TCP DNS served message by
 * message. No guest: mitm_dns_allowed() on parsed queries (empty list = all; with a list only
 * IN A/AAAA/CNAME/SVCB/HTTPS of names an entry matches, each refusal counted and reported),
 * CNAME chains (the target may be asked for, and its addresses count for the allowed name,
 * on that name's port, until the chain's TTL ends); then a TCP DNS flow whose guest end is a
 * socketpair and whose upstream is a thread answering on 127.0.0.1: a refused query gets
 * REFUSED and nothing is sent upstream (not even a connection), an allowed one is forwarded
 * with a fresh id and answered with the guest's, AAAA is answered empty, pipelined queries
 * are answered in order, a short length ends the flow, an upstream that hangs up resets it. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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

#include "base/loop.h"
#include "mitm/internal.h"
#include "mitm/mitm.h"

static int64_t fake_now = 1000000;
static int64_t fake_clock(void) { return fake_now; }

static int setup_clock(void **state)
{
	(void)state;
	fake_now = 1000000;
	mitm_clock_ms = fake_clock;
	return 0;
}

static int setup_real_clock(void **state)
{
	(void)state;
	mitm_clock_ms = ml_now_ms;
	return 0;
}

/* A query for a dotted name, in wire form; returns its length. */
static size_t query(uint8_t *b, uint16_t id, const char *dotted, uint16_t qtype, uint16_t qclass)
{
	size_t n = 12;

	memset(b, 0, 12);
	dnswire_wr16(b, id);
	b[2] = 0x01;
	dnswire_wr16(b + 4, 1);
	for (const char *p = dotted; *p;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		b[n++] = (uint8_t)len;
		memcpy(b + n, p, len);
		n += len;
		p += len + (dot ? 1 : 0);
	}
	b[n++] = 0;
	dnswire_wr16(b + n, qtype);
	dnswire_wr16(b + n + 2, qclass);
	return n + 4;
}

static bool asks(struct mitm *m, const char *name, uint16_t qtype, uint16_t qclass)
{
	uint8_t b[512];
	struct dnswire_query q;
	struct sockaddr_in srv = { .sin_family = AF_INET };

	assert_int_equal(dnswire_query_parse(b, query(b, 1, name, qtype, qclass), &q), 0);
	return mitm_dns_allowed(m, &q, &srv);
}

static int events;
static char last_reason[64];

static void on_event(void *arg, const struct mitm_event *ev)
{
	(void)arg;
	events++;
	snprintf(last_reason, sizeof(last_reason), "%s", ev->reason);
}

static struct mitm *make(const char **allow, size_t n, uint16_t dns_port)
{
	struct mitm_config c = { .allow_hosts = (char **)allow, .n_allow_hosts = n, .n_dns = 1, .event = on_event };
	struct ml_err e = { 0 };
	struct mitm *m = NULL;

	c.dns[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(dns_port),
					 .sin_addr = { htonl(INADDR_LOOPBACK) } };
	if (mitm_new(&c, &m, &e) < 0)
		fail_msg("mitm_new: %s", e.msg);
	events = 0;
	return m;
}

static int check(struct mitm *m, const char *ip, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };

	assert_int_equal(inet_pton(AF_INET, ip, &s.sin_addr), 1);
	return mitm_connect_check(m, (struct sockaddr *)&s);
}

static void without_a_list_every_question_goes(void **state)
{
	struct mitm *m = make(NULL, 0, 53);

	(void)state;
	assert_true(asks(m, "anything.example", 16, 1));  /* TXT */
	assert_true(asks(m, "", 2, 1));
	assert_int_equal(events, 0);
	mitm_free(m);
}

static void with_a_list_only_matching_names_and_address_types_go(void **state)
{
	const char *allow[] = { "web.test", "*.example.test", "echo.test:7", "1.2.3.4", "93.184.*" };
	struct mitm *m = make(allow, 5, 53);
	struct mitm_stats st;

	(void)state;
	assert_true(asks(m, "web.test", 1, 1));
	assert_true(asks(m, "WEB.test", 28, 1));      /* AAAA */
	assert_true(asks(m, "web.test", 5, 1));       /* CNAME */
	assert_true(asks(m, "web.test", 64, 1));      /* SVCB */
	assert_true(asks(m, "web.test", 65, 1));      /* HTTPS */
	assert_true(asks(m, "api.example.test", 1, 1));
	assert_true(asks(m, "echo.test", 1, 1));      /* a port entry still names its host */
	assert_false(asks(m, "example.test", 1, 1));  /* *.x is not the apex */
	assert_false(asks(m, "web.test", 16, 1));     /* TXT: the classic tunnel */
	assert_false(asks(m, "web.test", 15, 1));     /* MX */
	assert_false(asks(m, "web.test", 10, 1));     /* NULL */
	assert_false(asks(m, "web.test", 255, 1));    /* ANY */
	assert_false(asks(m, "web.test", 1, 3));      /* class CH */
	assert_false(asks(m, "d41d8cd98f00b204.tunnel.evil.test", 1, 1));
	assert_false(asks(m, "1.2.3.4", 1, 1));       /* address entries open no names */
	assert_false(asks(m, "93.184.1.1", 1, 1));
	assert_false(asks(m, "", 1, 1));              /* the root */
	assert_string_equal(last_reason, "DNS name not a host name");
	mitm_stats(m, &st);
	assert_int_equal(st.dns_refused, 10);
	assert_int_equal(events, 10);
	mitm_free(m);
}

static void star_opens_every_name_but_not_every_type(void **state)
{
	const char *allow[] = { "*:443" };
	struct mitm *m = make(allow, 1, 53);

	(void)state;
	assert_true(asks(m, "any.where.test", 1, 1));
	assert_false(asks(m, "any.where.test", 16, 1));
	assert_string_equal(last_reason, "DNS type not allowed");
	mitm_free(m);
}

static void learn_chain(struct mitm *m, const char *name, const char *target, const char *ip, uint32_t ttl)
{
	struct dnswire_answer a = { .ttl_s = ttl, .chain_ttl_s = ttl };

	snprintf(a.name, sizeof(a.name), "%s", name);
	if (target) {
		snprintf(a.chain[0], sizeof(a.chain[0]), "%s", target);
		a.n_chain = 1;
	}
	if (ip) {
		assert_int_equal(inet_pton(AF_INET, ip, &a.addrs[0]), 1);
		a.n = 1;
	}
	mitm_dns_learn(m, &a);
}

static void a_cname_target_may_be_asked_and_counts_for_the_allowed_name(void **state)
{
	const char *allow[] = { "www.example.test" };
	struct mitm *m = make(allow, 1, 53);

	(void)state;
	assert_false(asks(m, "edge.cdn.test", 1, 1));
	/* the answer gave only the CNAME: the resolver asks for the target next */
	learn_chain(m, "www.example.test", "edge.cdn.test", NULL, 300);
	assert_true(asks(m, "edge.cdn.test", 1, 1));
	assert_false(asks(m, "other.cdn.test", 1, 1));
	learn_chain(m, "edge.cdn.test", NULL, "198.51.100.77", 300);
	assert_int_equal(check(m, "198.51.100.77", 443), 0);   /* as www.example.test */
	assert_int_equal(check(m, "198.51.100.77", 22), -EACCES);
	/* a target learned from an unwanted name teaches nothing */
	learn_chain(m, "evil.test", "edge2.cdn.test", "198.51.100.78", 300);
	assert_false(asks(m, "edge2.cdn.test", 1, 1));
	assert_int_equal(check(m, "198.51.100.78", 443), -EACCES);
	/* the chain lives as long as its TTL */
	fake_now += 301 * 1000;
	assert_false(asks(m, "edge.cdn.test", 1, 1));
	assert_int_equal(check(m, "198.51.100.77", 443), -EACCES);
	mitm_free(m);
}

/* ---- TCP DNS: a socketpair guest, a thread upstream ---- */

struct upstream {
	int lfd;
	uint16_t port;
	pthread_t th;
	int accepted, queries;
	uint16_t ids[16];
	bool hang_up;          /* close after reading a query, no answer */
};

static bool read_full(int fd, uint8_t *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* Answers each query with its question and one A record 192.0.2.1. */
static void *upstream_main(void *arg)
{
	struct upstream *u = arg;
	int c;

	while ((c = accept(u->lfd, NULL, NULL)) >= 0) {
		uint8_t len[2], msg[600];
		__atomic_add_fetch(&u->accepted, 1, __ATOMIC_SEQ_CST);
		while (read_full(c, len, 2)) {
			size_t n = dnswire_rd16(len);
			static const uint8_t rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1 };
			if (n > 500 || !read_full(c, msg, n))
				break;
			int k = __atomic_fetch_add(&u->queries, 1, __ATOMIC_SEQ_CST);
			if (k < 16)
				u->ids[k] = dnswire_rd16(msg);
			if (u->hang_up)
				break;
			msg[2] |= 0x80;
			dnswire_wr16(msg + 6, 1);
			memcpy(msg + n, rr, sizeof(rr));
			n += sizeof(rr);
			dnswire_wr16(len, (uint16_t)n);
			if (write(c, len, 2) != 2 || write(c, msg, n) != (ssize_t)n)
				break;
		}
		close(c);
	}
	return NULL;
}

static void upstream_start(struct upstream *u)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = { htonl(INADDR_LOOPBACK) } };
	socklen_t al = sizeof(a);

	u->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(u->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(u->lfd, 8), 0);
	assert_int_equal(getsockname(u->lfd, (struct sockaddr *)&a, &al), 0);
	u->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&u->th, NULL, upstream_main, u), 0);
}

static void upstream_stop(struct upstream *u)
{
	shutdown(u->lfd, SHUT_RDWR);
	pthread_join(u->th, NULL);
	close(u->lfd);
}

static int aborts;
static void on_abort(void *arg, const struct sockaddr_in *s, const struct sockaddr_in *d)
{
	(void)arg;
	(void)s;
	(void)d;
	aborts++;
}

/* A TCP DNS flow to the alias 10.0.2.3:53; returns the guest's end. */
static int open_flow(struct mitm *m)
{
	int sv[2];
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(40000), .sin_addr = { htonl(0x0a00020f) } };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = { htonl(0x0a000203) } };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	mitm_flow(m, sv[1], &src, &dst);
	return sv[0];
}

/* Runs mitm's TCP DNS rounds until the guest end has want bytes (or EOF: returns what came). */
static size_t pump(struct mitm *m, int g, uint8_t *out, size_t want)
{
	size_t got = 0;
	int64_t end = ml_now_ms() + 5000;

	while (got < want && ml_now_ms() < end) {
		struct pollfd *fds;
		size_t n;
		int t = 20;
		mitm_dns_poll_fill(m, &fds, &n, &t);
		poll(fds, n, t > 20 || t < 0 ? 20 : t);
		mitm_dns_poll_done(m, fds, n);
		ssize_t r = read(g, out + got, want - got);
		if (r == 0)
			break;
		if (r > 0)
			got += (size_t)r;
	}
	return got;
}

static void framed_write(int g, const uint8_t *msg, size_t n)
{
	uint8_t b[700];

	dnswire_wr16(b, (uint16_t)n);
	memcpy(b + 2, msg, n);
	assert_int_equal(write(g, b, n + 2), (ssize_t)n + 2);
}

static void tcp_refused_queries_never_reach_upstream(void **state)
{
	const char *allow[] = { "web.test" };
	struct upstream u = { 0 };
	struct mitm *m;
	uint8_t q[512], r[600];
	size_t n;
	int g;

	(void)state;
	upstream_start(&u);
	m = make(allow, 1, u.port);
	g = open_flow(m);
	n = query(q, 0x1111, "d41d8cd98f00.tunnel.evil.test", 16, 1);
	framed_write(g, q, n);
	assert_int_equal(pump(m, g, r, n + 2), n + 2);
	assert_int_equal(dnswire_rd16(r), n);
	assert_int_equal(dnswire_rd16(r + 2), 0x1111);
	assert_int_equal(r[5] & 0x0f, 5);                  /* REFUSED */
	assert_memory_equal(r + 2 + 12, q + 12, n - 12);
	/* AAAA of an allowed name: empty, locally */
	n = query(q, 0x2222, "web.test", 28, 1);
	framed_write(g, q, n);
	assert_int_equal(pump(m, g, r, n + 2), n + 2);
	assert_int_equal(r[5] & 0x0f, 0);
	assert_int_equal(dnswire_rd16(r + 2 + 6), 0);
	close(g);
	pump(m, g, r, 0);
	assert_int_equal(u.accepted, 0);                    /* not even a connection */
	assert_int_equal(u.queries, 0);
	mitm_free(m);
	upstream_stop(&u);
}

static void tcp_allowed_queries_are_forwarded_with_fresh_ids_in_order(void **state)
{
	const char *allow[] = { "web.test" };
	struct upstream u = { 0 };
	struct mitm *m;
	struct mitm_stats st;
	uint8_t q1[512], q2[512], q3[512], r[2000];
	size_t n1, n2, n3, want;
	int g;

	(void)state;
	upstream_start(&u);
	m = make(allow, 1, u.port);
	g = open_flow(m);
	/* three pipelined queries in one write: allowed, refused, allowed */
	n1 = query(q1, 0xaaaa, "web.test", 1, 1);
	n2 = query(q2, 0xbbbb, "evil.test", 1, 1);
	n3 = query(q3, 0xcccc, "web.test", 65, 1);
	uint8_t all[1600];
	size_t k = 0;
	dnswire_wr16(all + k, (uint16_t)n1);
	memcpy(all + k + 2, q1, n1);
	k += n1 + 2;
	dnswire_wr16(all + k, (uint16_t)n2);
	memcpy(all + k + 2, q2, n2);
	k += n2 + 2;
	dnswire_wr16(all + k, (uint16_t)n3);
	memcpy(all + k + 2, q3, n3);
	k += n3 + 2;
	assert_int_equal(write(g, all, k), (ssize_t)k);
	want = (n1 + 16 + 2) + (n2 + 2) + (n3 + 16 + 2);
	assert_int_equal(pump(m, g, r, want), want);
	assert_int_equal(dnswire_rd16(r + 2), 0xaaaa);     /* answers in order, guest ids */
	assert_int_equal(dnswire_rd16(r + 2 + 6), 1);
	assert_int_equal(dnswire_rd16(r + n1 + 18 + 2), 0xbbbb);
	assert_int_equal(r[n1 + 18 + 5] & 0x0f, 5);
	assert_int_equal(dnswire_rd16(r + n1 + 18 + n2 + 2 + 2), 0xcccc);
	assert_int_equal(u.queries, 2);                     /* evil.test never went */
	assert_int_equal(u.accepted, 1);                    /* one upstream connection */
	assert_true(u.ids[0] != 0xaaaa && u.ids[1] != 0xcccc);
	/* the A answer was learned: web.test's address is open on 80/443 */
	assert_int_equal(check(m, "192.0.2.1", 443), 0);
	mitm_stats(m, &st);
	assert_int_equal(st.dns_tcp_flows, 1);
	assert_int_equal(st.dns_tcp_queries, 2);
	assert_int_equal(st.dns_refused, 1);
	/* the guest's FIN ends the flow */
	shutdown(g, SHUT_WR);
	assert_int_equal(pump(m, g, r, 1), 0);
	mitm_stats(m, &st);
	assert_int_equal(m->n_dnsflows, 0);
	close(g);
	mitm_free(m);
	upstream_stop(&u);
}

static void tcp_bad_lengths_end_and_hangups_reset(void **state)
{
	const char *allow[] = { "web.test" };
	struct upstream u = { .hang_up = true };
	struct mitm *m;
	uint8_t q[512], r[64];
	int g;

	(void)state;
	upstream_start(&u);
	m = make(allow, 1, u.port);
	m->cfg.abort_flow = on_abort;
	aborts = 0;
	g = open_flow(m);
	assert_int_equal(write(g, "\x00\x05hello", 7), 7);  /* shorter than a header */
	assert_int_equal(pump(m, g, r, 1), 0);               /* EOF */
	assert_int_equal(aborts, 0);
	close(g);
	g = open_flow(m);
	framed_write(g, q, query(q, 7, "web.test", 1, 1));
	assert_int_equal(pump(m, g, r, 1), 0);               /* the upstream hung up */
	assert_int_equal(aborts, 1);                         /* so the guest gets a reset */
	close(g);
	mitm_free(m);
	upstream_stop(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(without_a_list_every_question_goes, setup_clock),
		cmocka_unit_test_setup(with_a_list_only_matching_names_and_address_types_go, setup_clock),
		cmocka_unit_test_setup(star_opens_every_name_but_not_every_type, setup_clock),
		cmocka_unit_test_setup(a_cname_target_may_be_asked_and_counts_for_the_allowed_name, setup_clock),
		cmocka_unit_test_setup(tcp_refused_queries_never_reach_upstream, setup_real_clock),
		cmocka_unit_test_setup(tcp_allowed_queries_are_forwarded_with_fresh_ids_in_order, setup_real_clock),
		cmocka_unit_test_setup(tcp_bad_lengths_end_and_hangups_reset, setup_real_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
