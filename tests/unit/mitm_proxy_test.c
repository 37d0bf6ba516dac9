/* tests/unit/mitm_proxy_test.c - the intercepting HTTP proxy (TCP/80) with real sockets on
 * loopback: a socketpair end is the guest, a scripted upstream (proxy_world.h) the internet.
 * Proves: policy by the Host name (allow-list globs, the apex rule, private and loopback
 * addresses after the host's own lookup) with 403 "Blocked by policy" and nothing sent
 * upstream; keep-alive on one upstream connection; pipelined requests answered in order;
 * chunked both ways; HEAD; Expect: 100-continue; Connection: close and close-delimited bodies;
 * smuggling (CL+TE, two CLs, obs-fold) -> 400, a 70 KiB head -> 431; an upstream that refuses,
 * never answers, sends garbage or resets mid-body; WebSocket after the 101; SSE events as they
 * come; secrets in headers, Basic credentials and the query for their host only; 10,000
 * requests on one connection without memory growth; a head that never finishes is closed;
 * every decision in egress.jsonl and as an event. */
#include <jansson.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy_world.h"

static char *allow_test[] = { PW_TEST_NAMES };
static char buf[1 << 23];

static struct pw *world(char **allow, size_t n)
{
	return pw_new(allow, n, NULL, 0);
}

static void test_get_by_host(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);

	pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	if (!strstr(buf, "HTTP/1.1 200 OK"))
		fail_msg("got [%s]", buf);
	assert_non_null(strstr(buf, "\r\n\r\nhello"));
	assert_true(up_log_has(u, "GET /hello HTTP/1.1\r\nHost: web.test\r\n"));
	assert_int_equal(w->events, 1);
	assert_non_null(strstr(w->last_event, "GET web.test /hello 200 blocked=0"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_keepalive_uses_one_upstream_connection(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);

	for (int i = 0; i < 3; i++) {
		pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
		assert_non_null(strstr(buf, "\r\n\r\nhello"));
	}
	assert_int_equal(up_accepts(u), 1);
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_pipelined_requests_answered_in_order(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	const char *two = "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\nGET /chunked HTTP/1.1\r\nHost: web.test\r\n\r\n";
	bool eof;

	pw_send(w, fd, two, strlen(two));
	pw_read_until(w, fd, buf, sizeof(buf), 5000, has_two_responses, &eof);
	char *first = strstr(buf, "hello"), *second = strstr(buf, "Transfer-Encoding: chunked");
	assert_non_null(first);
	assert_non_null(second);
	assert_true(first < second);
	assert_non_null(strstr(buf, "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_denied_host_gets_403_and_nothing_goes_upstream(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	bool eof;

	pw_send(w, fd, "GET / HTTP/1.1\r\nHost: other.org\r\n\r\n", 36);
	pw_read_until(w, fd, buf, sizeof(buf), 3000, NULL, &eof);
	assert_true(eof);
	assert_non_null(strstr(buf, "HTTP/1.1 403 Forbidden\r\n"));
	assert_non_null(strstr(buf, "Connection: close\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nBlocked by policy\n"));
	assert_int_equal(up_accepts(u), 0);
	assert_non_null(strstr(w->last_event, "blocked=1 reason=host not in allowlist"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_wildcard_does_not_match_the_apex(void **state)
{
	(void)state;
	static char *allow[] = { "*.example.test" };
	struct up *u = up_start();
	struct pw *w = world(allow, 1);
	int fd = pw_connect(w, WEB_IP, 80);

	pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: API.Example.test\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "hello"));
	close(fd);
	fd = pw_connect(w, WEB_IP, 80);
	pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: example.test\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "403 Forbidden"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_addresses_checked_after_the_hosts_lookup(void **state)
{
	(void)state;
	static char *all[] = { "*" };
	struct up *u = up_start();
	struct pw *w = world(all, 1);
	const char *hosts[] = { "private.test", "127.0.0.1", "169.254.169.254", "10.0.2.2" };

	for (size_t i = 0; i < sizeof(hosts) / sizeof(*hosts); i++) {
		char req[256];
		int fd = pw_connect(w, WEB_IP, 80);

		snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: %s\r\n\r\n", hosts[i]);
		pw_exchange(w, fd, req, buf, sizeof(buf));
		if (!strstr(buf, "403 Forbidden"))
			fail_msg("Host %s: wanted 403, got [%.60s]", hosts[i], buf);
		close(fd);
	}
	assert_int_equal(up_accepts(u), 0);
	int fd = pw_connect(w, WEB_IP, 80);
	pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: " WEB_IP "\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "hello"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_chunked_both_ways(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);

	pw_exchange(w, fd, "POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
	assert_non_null(strstr(buf, "|hello world"));
	pw_exchange(w, fd, "GET /chunked HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_head_has_no_body_and_the_connection_goes_on(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	bool eof;

	pw_send(w, fd, "HEAD /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", 40);
	pw_read_until(w, fd, buf, sizeof(buf), 500, NULL, &eof);
	assert_non_null(strstr(buf, "Content-Length: 5\r\n\r\n"));
	assert_null(strstr(buf, "hello"));
	pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	if (strncmp(buf, "HTTP/1.1 200 OK", 15))
		fail_msg("after HEAD: [%s]", buf);
	assert_non_null(strstr(buf, "hello"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static bool has_continue(const char *b, size_t n)
{
	(void)n;
	return strstr(b, "100 Continue\r\n\r\n") != NULL;
}

static void test_expect_100_continue(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	const char *head = "POST /continue HTTP/1.1\r\nHost: web.test\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n";
	bool eof;

	pw_send(w, fd, head, strlen(head));
	pw_read_until(w, fd, buf, sizeof(buf), 3000, has_continue, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 100 Continue\r\n\r\n"));
	pw_exchange(w, fd, "0123456789", buf, sizeof(buf));
	assert_non_null(strstr(buf, "00000010"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void expect_status(struct pw *w, const char *req, const char *status)
{
	int fd = pw_connect(w, WEB_IP, 80);
	bool eof;

	pw_send(w, fd, req, strlen(req));
	pw_read_until(w, fd, buf, sizeof(buf), 3000, NULL, &eof);
	if (!strstr(buf, status))
		fail_msg("wanted %s for [%.50s...], got [%.60s]", status, req, buf);
	assert_true(eof);
	close(fd);
}

static void test_smuggling_and_huge_heads_refused(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	static char huge[80000];

	expect_status(w, "POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request");
	expect_status(w, "POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		      "400 Bad Request");
	expect_status(w, "GET /echo HTTP/1.1\r\nHost: web.test\r\nX-A: 1\r\n  folded\r\n\r\n", "400 Bad Request");
	expect_status(w, "GET /echo HTTP/1.1\r\nHost: web.test\r\nHost: other.test\r\n\r\n", "400 Bad Request");
	expect_status(w, "POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: gzip\r\n\r\nx", "400 Bad Request");
	expect_status(w, "GET /echo HTTP/1.1\r\n\r\n", "400 Bad Request");
	strcpy(huge, "GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: ");
	memset(huge + strlen(huge), 'a', 70000);
	strcat(huge, "\r\n\r\n");
	expect_status(w, huge, "431 Request Header Fields Too Large");
	assert_int_equal(up_accepts(u), 0);
	pw_free(w);
	up_stop(u);
}

static void test_connection_close_and_close_delimited_bodies(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	bool eof;

	{ const char *rq = "GET /hello HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"; pw_send(w, fd, rq, strlen(rq)); }
	pw_read_until(w, fd, buf, sizeof(buf), 3000, NULL, &eof);
	assert_true(eof);
	if (!strstr(buf, "hello"))
		fail_msg("Connection: close: [%s]", buf);
	close(fd);
	fd = pw_connect(w, WEB_IP, 80);
	pw_send(w, fd, "GET /close HTTP/1.1\r\nHost: web.test\r\n\r\n", 39);
	pw_read_until(w, fd, buf, sizeof(buf), 3000, NULL, &eof);
	assert_true(eof);
	assert_non_null(strstr(buf, "\r\n\r\nbye"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_upstream_failures(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd;
	bool eof;
	int64_t t;

	expect_status(w, "GET /garbage HTTP/1.1\r\nHost: web.test\r\n\r\n", "502 Bad Gateway");
	t = ml_now_ms();
	expect_status(w, "GET /never HTTP/1.1\r\nHost: web.test\r\n\r\n", "504 Gateway Timeout");
	assert_true(ml_now_ms() - t >= 1400);
	/* reset mid-body: the guest sees its connection end short of the promised length */
	fd = pw_connect(w, WEB_IP, 80);
	pw_send(w, fd, "GET /reset HTTP/1.1\r\nHost: web.test\r\n\r\n", 39);
	size_t n = pw_read_until(w, fd, buf, sizeof(buf), 3000, NULL, &eof);
	assert_true(eof);
	assert_true(n < 100000);
	close(fd);
	up_stop(u);
	expect_status(w, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", "502 Bad Gateway");
	assert_non_null(strstr(buf, "upstream connect failed"));
	pw_free(w);
}

static bool has_pong(const char *b, size_t n)
{
	(void)n;
	return strstr(b, "ping-pong") != NULL;
}

static void test_websocket_relayed_after_the_101(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	bool eof;

	pw_exchange(w, fd, "GET /ws HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		    buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 101 Switching Protocols"));
	pw_send(w, fd, "ping-pong", 9);
	pw_read_until(w, fd, buf, sizeof(buf), 3000, has_pong, &eof);
	assert_string_equal(buf, "ping-pong");
	close(fd);
	pw_free(w);
	up_stop(u);
}

static bool has_one(const char *b, size_t n)
{
	(void)n;
	return strstr(b, "data: one") != NULL;
}

static bool has_two(const char *b, size_t n)
{
	(void)n;
	return strstr(b, "data: two") != NULL;
}

static void test_sse_events_reach_the_guest_as_they_come(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	bool eof;
	size_t n;

	pw_send(w, fd, "GET /sse HTTP/1.1\r\nHost: web.test\r\n\r\n", 37);
	n = pw_read_until(w, fd, buf, sizeof(buf), 3000, has_one, &eof);
	assert_non_null(strstr(buf, "data: one"));
	assert_null(strstr(buf, "data: two"));
	up_release(u);
	pw_read_until(w, fd, buf + n, sizeof(buf) - n, 3000, has_two, &eof);
	assert_non_null(strstr(buf + n, "data: two"));
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_big_body_intact(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	size_t n = pw_exchange(w, fd, "GET /big HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	char *body = strstr(buf, "\r\n\r\n") + 4;

	assert_int_equal(n - (size_t)(body - buf), 4u << 20);
	for (size_t i = 0; i < 4u << 20; i++)
		if (body[i] != (char)('a' + (i % 65536) % 26))
			fail_msg("byte %zu differs", i);
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_secrets_for_their_host_only(void **state)
{
	(void)state;
	static char *hosts_api[] = { "api.test" };
	char ph[MITM_PLACEHOLDER_LEN + 1], req[1024], basic[256];
	struct mitm_secret s = { .name = "TOKEN", .value = "s3cr3t-value", .hosts = hosts_api, .n_hosts = 1 };
	struct up *u = up_start();
	struct pw *w;
	int fd;

	assert_int_equal(mitm_placeholder_new(ph), 0);
	assert_int_equal(strlen(ph), MITM_PLACEHOLDER_LEN);
	assert_int_equal(strncmp(ph, "SANDBOX_SECRET_", 15), 0);
	s.placeholder = ph;
	w = pw_new(NULL, 0, &s, 1);   /* the secret's host is the whole allow-list */
	fd = pw_connect(w, WEB_IP, 80);
	snprintf(req, sizeof(req), "GET /echo?key=%s&x=1 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\n\r\n", ph, ph);
	pw_exchange(w, fd, req, buf, sizeof(buf));
	assert_true(up_log_has(u, "GET /echo?key=s3cr3t-value&x=1 HTTP/1.1"));
	assert_true(up_log_has(u, "Authorization: Bearer s3cr3t-value\r\n"));
	assert_non_null(strstr(w->last_event, "secrets=1"));
	/* Basic: base64("x:" ph) -> base64("x:s3cr3t-value") */
	char user[80];
	snprintf(user, sizeof(user), "x:%s", ph);
	gnutls_datum_t in = { (unsigned char *)user, (unsigned)strlen(user) }, out;
	assert_int_equal(gnutls_base64_encode2(&in, &out), 0);
	snprintf(basic, sizeof(basic), "%.*s", (int)out.size, out.data);
	gnutls_free(out.data);
	snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nHost: api.test\r\nAuthorization: Basic %s\r\n\r\n", basic);
	pw_exchange(w, fd, req, buf, sizeof(buf));
	assert_true(up_log_has(u, "Authorization: Basic eDpzM2NyM3QtdmFsdWU=\r\n"));
	close(fd);
	/* to a host the secret is not for: 403, nothing upstream, the value nowhere */
	int before = up_accepts(u);
	static char *all[] = { "*" };
	pw_free(w);
	w = pw_new(all, 1, &s, 1);
	fd = pw_connect(w, WEB_IP, 80);
	snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nHost: web.test\r\nX-Key: %s\r\n\r\n", ph);
	pw_exchange(w, fd, req, buf, sizeof(buf));
	assert_non_null(strstr(buf, "403 Forbidden"));
	assert_non_null(strstr(buf, "secret placeholder sent to unauthorized host"));
	assert_non_null(strstr(w->last_event, "reason=secret placeholder sent to unauthorized host"));
	close(fd);
	fd = pw_connect(w, WEB_IP, 80);
	snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nHost: web.test\r\nAuthorization: Basic %s\r\n\r\n", basic);
	pw_exchange(w, fd, req, buf, sizeof(buf));
	assert_non_null(strstr(buf, "403 Forbidden"));
	close(fd);
	fd = pw_connect(w, WEB_IP, 80);
	snprintf(req, sizeof(req), "GET /echo/%s HTTP/1.1\r\nHost: web.test\r\n\r\n", ph);
	pw_exchange(w, fd, req, buf, sizeof(buf));
	assert_non_null(strstr(buf, "403 Forbidden"));
	close(fd);
	assert_int_equal(up_accepts(u), before);
	assert_false(up_log_has(u, "web.test"));
	pw_free(w);
	up_stop(u);
}

/* network.secrets from the wire: placeholders made (or kept), the secret works through the
 * proxy, and malformed entries are refused without the value in the message */
static void test_secrets_from_the_wire(void **state)
{
	(void)state;
	struct mitm_secret *s;
	size_t n;
	struct ml_err e;
	char req[512];
	json_t *j = json_loads("{\"TOKEN\": {\"value\": \"wire-value\", \"hosts\": [\"api.test\"]},"
			       " \"FIXED\": {\"value\": \"v2\", \"placeholder\": \"SANDBOX_SECRET_0123\"}}", 0, NULL);

	assert_non_null(j);
	assert_int_equal(mitm_secrets_parse(j, &s, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(s[0].name, "TOKEN");
	assert_int_equal(strlen(s[0].placeholder), MITM_PLACEHOLDER_LEN);
	assert_int_equal(s[0].n_hosts, 1);
	assert_string_equal(s[1].placeholder, "SANDBOX_SECRET_0123");
	assert_int_equal(s[1].n_hosts, 0);   /* no hosts: any host */
	json_decref(j);
	struct up *u = up_start();
	struct pw *w = pw_new(NULL, 0, s, 1);
	int fd = pw_connect(w, WEB_IP, 80);
	snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nHost: api.test\r\nX-Key: %s\r\n\r\n", s[0].placeholder);
	pw_exchange(w, fd, req, buf, sizeof(buf));
	assert_true(up_log_has(u, "X-Key: wire-value\r\n"));
	close(fd);
	pw_free(w);
	up_stop(u);
	mitm_secrets_free(s, n);
	assert_int_equal(mitm_secrets_parse(NULL, &s, &n, &e), 0);
	assert_int_equal(n, 0);
	const char *bad[] = { "[]", "{\"A\": 1}", "{\"A\": {\"value\": 5}}", "{\"A\": {\"value\": \"hidden-v\", \"hosts\": \"x\"}}",
			      "{\"A\": {\"value\": \"hidden-v\", \"hosts\": [1]}}", "{\"A=B\": {\"value\": \"hidden-v\"}}",
			      "{\"A\": {\"value\": \"hidden-v\", \"placeholder\": \"\"}}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = json_loads(bad[i], 0, NULL);
		assert_non_null(j);
		assert_int_equal(mitm_secrets_parse(j, &s, &n, &e), -EINVAL);
		assert_null(s);
		assert_null(strstr(e.msg, "hidden-v"));
		assert_non_null(strstr(e.msg, "network.secrets"));
		json_decref(j);
	}
}

static void test_idle_upstream_reused_and_a_dead_one_retried(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);

	pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	close(fd);
	/* the guest's close: the idle upstream is parked */
	for (int64_t end = ml_now_ms() + 3000; w->m->st.upstream_parked < 1 && ml_now_ms() < end;)
		pw_round(w, 20);
	fd = pw_connect(w, WEB_IP, 80);
	pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "hello"));
	assert_int_equal(up_accepts(u), 1);   /* a new guest connection, the same upstream one */
	close(fd);
	for (int64_t end = ml_now_ms() + 3000; w->m->st.upstream_parked < 2 && ml_now_ms() < end;)
		pw_round(w, 20);
	/* the parked connection answers nothing more: the request goes again on a fresh one */
	fd = pw_connect(w, WEB_IP, 80);
	pw_exchange(w, fd, "GET /once HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	if (!strstr(buf, "\r\n\r\nfresh"))
		fail_msg("after a stale idle connection: [%s]", buf);
	assert_int_equal(up_accepts(u), 2);
	assert_int_equal(w->m->st.upstream_retried, 1);
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_ten_thousand_requests_without_growth(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	size_t at100 = 0;

	for (int i = 0; i < 10000; i++) {
		pw_exchange(w, fd, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
		if (!strstr(buf, "\r\n\r\nhello"))
			fail_msg("request %d: [%.60s]", i, buf);
		if (i == 100)
			at100 = mallinfo2().uordblks;
	}
	size_t at10000 = mallinfo2().uordblks;
	if (at10000 > at100 + 64 * 1024)
		fail_msg("heap grew from %zu to %zu bytes", at100, at10000);
	assert_int_equal(up_accepts(u), 1);
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_a_head_that_never_ends_is_closed(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	int64_t t = ml_now_ms();
	bool eof;

	pw_send(w, fd, "GET / HTTP/1.1\r\nHost: web", 25);
	pw_read_until(w, fd, buf, sizeof(buf), 5000, NULL, &eof);
	assert_true(eof);
	assert_true(ml_now_ms() - t >= 900);
	assert_true(ml_now_ms() - t < 3000);
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_a_trickled_head_is_closed(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	int fd = pw_connect(w, WEB_IP, 80);
	const char *req = "GET /hello HTTP/1.1\r\nHost: web.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	int64_t t = ml_now_ms();
	bool eof = false;

	/* a byte every 100 ms: each byte is progress, but the head has 1 s from its first byte */
	for (size_t i = 0; req[i] && !eof && ml_now_ms() - t < 4000; i++) {
		pw_send(w, fd, req + i, 1);
		pw_read_until(w, fd, buf, sizeof(buf), 100, NULL, &eof);
	}
	assert_true(eof);
	assert_true(ml_now_ms() - t < 2000);
	assert_int_equal(up_accepts(u), 0);
	close(fd);
	pw_free(w);
	up_stop(u);
}

static void test_audit_trail(void **state)
{
	(void)state;
	char path[] = "/tmp/mitm_audit_XXXXXX";
	int afd = mkstemp(path);
	struct up *u = up_start();
	struct pw *w = world(allow_test, PW_N_TEST_NAMES);
	struct mitm_config c = { .allow_hosts = allow_test, .n_allow_hosts = 1, .block_private_ips = true };
	struct ml_err e;
	int fd;

	close(afd);
	mitm_free(w->m);
	w->ic.audit_path = path;
	c.intercept = &w->ic;
	assert_int_equal(mitm_new(&c, &w->m, &e), 0);
	fd = pw_connect(w, WEB_IP, 80);
	pw_exchange(w, fd, "GET /hello?q=1 HTTP/1.1\r\nHost: web.test\r\n\r\n", buf, sizeof(buf));
	close(fd);
	fd = pw_connect(w, WEB_IP, 80);
	pw_exchange(w, fd, "GET /x HTTP/1.1\r\nHost: nope.org\r\n\r\n", buf, sizeof(buf));
	close(fd);
	pw_free(w);
	FILE *f = fopen(path, "r");
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	unlink(path);
	assert_non_null(strstr(buf, "\"host\":\"web.test\",\"method\":\"GET\",\"path\":\"/hello\",\"status\":200,\"blocked\":false"));
	assert_non_null(strstr(buf, "\"host\":\"nope.org\",\"method\":\"GET\",\"path\":\"/x\",\"status\":403,\"blocked\":true,\"reason\":\"host not in allowlist\""));
	up_stop(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_by_host),
		cmocka_unit_test(test_keepalive_uses_one_upstream_connection),
		cmocka_unit_test(test_pipelined_requests_answered_in_order),
		cmocka_unit_test(test_denied_host_gets_403_and_nothing_goes_upstream),
		cmocka_unit_test(test_wildcard_does_not_match_the_apex),
		cmocka_unit_test(test_addresses_checked_after_the_hosts_lookup),
		cmocka_unit_test(test_chunked_both_ways),
		cmocka_unit_test(test_head_has_no_body_and_the_connection_goes_on),
		cmocka_unit_test(test_expect_100_continue),
		cmocka_unit_test(test_smuggling_and_huge_heads_refused),
		cmocka_unit_test(test_connection_close_and_close_delimited_bodies),
		cmocka_unit_test(test_upstream_failures),
		cmocka_unit_test(test_websocket_relayed_after_the_101),
		cmocka_unit_test(test_sse_events_reach_the_guest_as_they_come),
		cmocka_unit_test(test_big_body_intact),
		cmocka_unit_test(test_secrets_for_their_host_only),
		cmocka_unit_test(test_secrets_from_the_wire),
		cmocka_unit_test(test_idle_upstream_reused_and_a_dead_one_retried),
		cmocka_unit_test(test_ten_thousand_requests_without_growth),
		cmocka_unit_test(test_a_head_that_never_ends_is_closed),
		cmocka_unit_test(test_a_trickled_head_is_closed),
		cmocka_unit_test(test_audit_trail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
