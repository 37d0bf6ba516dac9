/* tests/unit/mitm_rules_test.c - network hook rules. First their
 * compilation from the wire form (phases, actions, allow -> mutate, dropped rules, canonical
 * header names, empty finds, a header value that would split a request refused), then each
 * static rule type through the HTTP proxy of proxy_world.h: before-phase set/delete headers,
 * set/delete query (re-encoded sorted), path rewrite, block; methods and path globs; after-phase
 * response headers, block, a whole-body replacement (new Content-Length), SSE data: lines
 * rewritten as they stream; Accept-Encoding: identity when a body rule may apply. Then the SDK
 * callback protocol against a hook server on a Unix socket: the request object, request and
 * response mutations (headers replaced wholesale, set_body_base64), block, and fail-open on a
 * timeout, an error reply, garbage and an unreachable socket. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include <cmocka.h>

#include "mitm/rules.h"
#include "proxy_world.h"
#include "rpc/sandbox.h"

static char buf[1 << 20];

static struct mitm_rules *compile(const char *json)
{
	json_error_t je;
	json_t *j = json_loads(json, 0, &je);
	struct mitm_rules *rs = NULL;
	struct ml_err e;

	if (!j)
		fail_msg("bad test JSON: %s", je.text);
	if (mitm_rules_parse(j, &rs, &e) < 0)
		fail_msg("mitm_rules_parse: %s", e.msg);
	json_decref(j);
	return rs;
}

static void test_compile(void **state)
{
	(void)state;
	struct mitm_rules *rs = compile("["
		"{\"name\":\"a\",\"phase\":\"AFTER\",\"action\":\"allow\",\"set_response_headers\":{\"x-one\":\"1\",\"X-One\":\"2\",\" \":\"x\"}},"
		"{\"name\":\"dropped\",\"action\":\"allow\",\"set_response_headers\":{\"X\":\"1\"}},"
		"{\"name\":\"b\",\"action\":\"weird\",\"set_headers\":{\"x-hook\":\"v\"},\"methods\":[\"get\",\"\"]},"
		"{\"name\":\"c\",\"action\":\"block\"},"
		"{\"name\":\"d\",\"phase\":\"after\",\"body_replacements\":[{\"find\":\"\",\"replace\":\"x\"}]},"
		"{\"name\":\"e\",\"callback_id\":\"network_hook_6\",\"timeout_ms\":250},"
		"{\"name\":\"f\",\"action\":\"mutate\",\"delete_headers\":[\"x-a\",\"X-A\",\"\"]}"
		"]");
	assert_int_equal(mitm_rules_count(rs), 5);   /* "dropped" and "d" are gone */
	assert_string_equal(rs->v[0].name, "a");
	assert_true(rs->v[0].after);
	assert_int_equal(rs->v[0].action, RA_MUTATE);   /* allow + mutations of its phase */
	assert_int_equal(rs->v[0].n_set_rh, 1);
	assert_string_equal(rs->v[0].set_rh[0].k, "X-One");
	assert_false(rs->v[1].after);
	assert_int_equal(rs->v[1].action, RA_MUTATE);
	assert_string_equal(rs->v[1].set_h[0].k, "X-Hook");
	assert_int_equal(rs->v[1].n_methods, 1);
	assert_string_equal(rs->v[1].methods[0], "GET");
	assert_int_equal(rs->v[2].action, RA_BLOCK);
	assert_string_equal(rs->v[3].callback_id, "network_hook_6");
	assert_int_equal(rs->v[3].timeout_ms, 250);
	assert_int_equal(rs->v[4].n_del_h, 1);
	assert_string_equal(rs->v[4].del_h[0], "X-A");
	mitm_rules_free(rs);

	struct ml_err e;
	json_t *j = json_loads("[{\"name\":\"evil\",\"set_headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}]", 0, NULL);
	assert_true(mitm_rules_parse(j, &rs, &e) < 0);
	assert_non_null(strstr(e.msg, "invalid network hook \"evil\""));
	json_decref(j);
	assert_int_equal(mitm_rules_parse(NULL, &rs, &e), 0);
	assert_int_equal(mitm_rules_count(rs), 0);
	mitm_rules_free(rs);
}

/* ---- through the proxy ---- */
static struct pw *rules_world(struct mitm_rules *rs, const char *sock)
{
	static char *allow[] = { PW_TEST_NAMES };
	struct pw *w = pw_new(allow, PW_N_TEST_NAMES, NULL, 0);
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = 1, .block_private_ips = true };
	struct ml_err e;

	mitm_free(w->m);
	w->ic.rules = rs;
	w->ic.callback_socket = sock;
	c.intercept = &w->ic;
	if (mitm_new(&c, &w->m, &e) < 0)
		fail_msg("mitm_new: %s", e.msg);
	return w;
}

static size_t one(struct pw *w, const char *req)
{
	int fd = pw_connect(w, WEB_IP, 80);
	size_t n = pw_exchange(w, fd, req, buf, sizeof(buf));

	close(fd);
	return n;
}

static void test_before_rules(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct mitm_rules *rs = compile("["
		"{\"name\":\"mut\",\"hosts\":[\"web.test\"],\"methods\":[\"GET\"],\"path\":\"/echo/v1\","
		" \"set_headers\":{\"X-Hook\":\"set\"},\"delete_headers\":[\"X-Remove\"],"
		" \"set_query\":{\"trace\":\"hooked\"},\"delete_query\":[\"drop\"],\"rewrite_path\":\"/echo/v2\"},"
		"{\"name\":\"no\",\"methods\":[\"POST\"],\"path\":\"/echo/*\",\"action\":\"block\"},"
		"{\"name\":\"deep\",\"path\":\"/echo/x/*\",\"action\":\"block\"}"
		"]");
	struct pw *w = rules_world(rs, NULL);

	one(w, "GET /echo/v1?z=9&drop=1&a=1 HTTP/1.1\r\nHost: web.test\r\nX-Remove: 1\r\n\r\n");
	assert_true(up_log_has(u, "GET /echo/v2?a=1&trace=hooked&z=9 HTTP/1.1\r\n"));
	assert_true(up_log_has(u, "X-Hook: set\r\n"));
	assert_false(up_log_has(u, "X-Remove"));
	assert_non_null(strstr(w->last_event, "rule=mut"));
	one(w, "POST /echo/v1 HTTP/1.1\r\nHost: web.test\r\nContent-Length: 0\r\n\r\n");
	assert_non_null(strstr(buf, "403 Forbidden"));
	assert_non_null(strstr(w->last_event, "blocked=1 reason=request blocked by policy rule=no"));
	one(w, "GET /echo/x HTTP/1.1\r\nHost: web.test\r\n\r\n");   /* "*" does not cross "/" */
	assert_non_null(strstr(buf, "200 OK"));
	one(w, "GET /echo/x/y HTTP/1.1\r\nHost: web.test\r\n\r\n");
	assert_non_null(strstr(buf, "403 Forbidden"));
	assert_false(up_log_has(u, "/echo/x/y"));
	pw_free(w);
	mitm_rules_free(rs);
	up_stop(u);
}

static void test_after_rules(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct mitm_rules *rs = compile("["
		"{\"name\":\"resp\",\"phase\":\"after\",\"path\":\"/resp-headers\","
		" \"set_response_headers\":{\"X-Intercepted\":\"true\"},\"delete_response_headers\":[\"X-Upstream\"],"
		" \"body_replacements\":[{\"find\":\"foo\",\"replace\":\"longer\"},{\"find\":\"bar\",\"replace\":\"b\"}]},"
		"{\"name\":\"sse\",\"phase\":\"after\",\"path\":\"/sse\",\"body_replacements\":[{\"find\":\"one\",\"replace\":\"uno\"},{\"find\":\"two\",\"replace\":\"dos\"}]},"
		"{\"name\":\"gone\",\"phase\":\"after\",\"path\":\"/hello\",\"action\":\"block\"}"
		"]");
	struct pw *w = rules_world(rs, NULL);
	bool eof;

	one(w, "GET /resp-headers HTTP/1.1\r\nHost: web.test\r\nAccept-Encoding: gzip\r\n\r\n");
	assert_non_null(strstr(buf, "X-Intercepted: true\r\n"));
	assert_null(strstr(buf, "X-Upstream"));
	assert_non_null(strstr(buf, "Content-Length: 15\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nlonger b longer"));
	assert_true(up_log_has(u, "Accept-Encoding: identity\r\n"));   /* not gzip: a rewrite may follow */
	assert_non_null(strstr(w->last_event, "rule=resp"));
	one(w, "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n");
	assert_non_null(strstr(buf, "403 Forbidden"));
	assert_null(strstr(buf, "hello"));
	/* SSE: the first event rewritten and delivered before the second is even sent */
	int fd = pw_connect(w, WEB_IP, 80);
	pw_send(w, fd, "GET /sse HTTP/1.1\r\nHost: web.test\r\n\r\n", 37);
	size_t n = 0;
	for (int64_t end = ml_now_ms() + 3000; !strstr(buf, "data: uno") && ml_now_ms() < end;)
		n += pw_read_until(w, fd, buf + n, sizeof(buf) - n, 50, NULL, &eof);
	assert_non_null(strstr(buf, "data: uno\n"));
	assert_null(strstr(buf, "Content-Length"));
	assert_non_null(strstr(buf, "Transfer-Encoding: chunked"));
	up_release(u);
	for (int64_t end = ml_now_ms() + 3000; !strstr(buf, "data: dos") && ml_now_ms() < end;)
		n += pw_read_until(w, fd, buf + n, sizeof(buf) - n, 50, NULL, &eof);
	assert_non_null(strstr(buf, "data: dos\n"));
	close(fd);
	pw_free(w);
	mitm_rules_free(rs);
	up_stop(u);
}

/* ---- the SDK hook server ---- */
static char hook_dir[] = "/tmp/mitm_hook_XXXXXX", hook_sock[200];
static int hook_fd = -1;
static pthread_t hook_thread;
static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static char hook_reply[2048], hook_last[8192];
static int hook_delay_ms, hook_calls;

static void *hook_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(hook_fd, NULL, NULL);
		char line[8192];
		size_t n = 0;

		if (c < 0)
			return NULL;
		while (n < sizeof(line) - 1 && recv(c, line + n, 1, 0) == 1 && line[n] != '\n')
			n++;
		line[n] = '\0';
		pthread_mutex_lock(&hook_mu);
		snprintf(hook_last, sizeof(hook_last), "%s", line);
		hook_calls++;
		int delay = hook_delay_ms;
		char reply[sizeof(hook_reply) + 2];
		snprintf(reply, sizeof(reply), "%s\n", hook_reply);
		pthread_mutex_unlock(&hook_mu);
		usleep((useconds_t)delay * 1000);
		send(c, reply, strlen(reply), MSG_NOSIGNAL);
		close(c);
	}
}

static void hook_set(const char *reply, int delay_ms)
{
	pthread_mutex_lock(&hook_mu);
	snprintf(hook_reply, sizeof(hook_reply), "%s", reply);
	hook_delay_ms = delay_ms;
	pthread_mutex_unlock(&hook_mu);
}

static int hooks_setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	(void)state;
	assert_non_null(mkdtemp(hook_dir));
	snprintf(hook_sock, sizeof(hook_sock), "%s/hook.sock", hook_dir);
	strcpy(sa.sun_path, hook_sock);
	hook_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(hook_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(hook_fd, 16), 0);
	pthread_create(&hook_thread, NULL, hook_main, NULL);
	return 0;
}

static int hooks_teardown(void **state)
{
	(void)state;
	shutdown(hook_fd, SHUT_RDWR);
	close(hook_fd);
	pthread_join(hook_thread, NULL);
	ml_rm_rf(hook_dir);
	return 0;
}

static void test_hook_before(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct mitm_rules *rs = compile("[{\"name\":\"cb\",\"path\":\"/echo/*\",\"set_headers\":{\"X-Static\":\"1\"},"
					"\"callback_id\":\"network_hook_1\",\"timeout_ms\":2000}]");
	struct pw *w = rules_world(rs, hook_sock);

	hook_set("{\"action\":\"mutate\",\"request\":{\"headers\":{\"x-from-hook\":[\"yes\",\"twice\"]},"
		 "\"query\":{\"q\":\"new value\"},\"path\":\"/echo/hooked\"}}", 0);
	one(w, "GET /echo/a?a=1&b=2 HTTP/1.1\r\nHost: web.test\r\nX-Guest: g\r\n\r\n");
	/* what the hook was told: after the rule's static change, before secrets */
	assert_non_null(strstr(hook_last, "\"callback_id\":\"network_hook_1\",\"phase\":\"before\",\"host\":\"web.test\","
				   "\"method\":\"GET\",\"path\":\"/echo/a\",\"query\":{\"a\":\"1\",\"b\":\"2\"}"));
	assert_non_null(strstr(hook_last, "\"X-Static\":[\"1\"]"));
	assert_non_null(strstr(hook_last, "\"X-Guest\":[\"g\"]"));
	/* the reply: every header replaced, the query and the path too */
	assert_true(up_log_has(u, "GET /echo/hooked?q=new+value HTTP/1.1\r\nHost: web.test\r\nX-From-Hook: yes\r\nX-From-Hook: twice\r\n\r\n"));
	assert_false(up_log_has(u, "X-Guest"));
	hook_set("{\"action\":\"block\"}", 0);
	one(w, "GET /echo/b HTTP/1.1\r\nHost: web.test\r\n\r\n");
	assert_non_null(strstr(buf, "403 Forbidden"));
	assert_false(up_log_has(u, "/echo/b"));
	/* fail-open: slower than the rule's deadline, an error, garbage */
	const char *ignored[] = { "{\"action\":\"block\"}", "{\"error\":\"boom\",\"action\":\"block\"}", "not json" };
	for (int i = 0; i < 3; i++) {
		char path[64], req[128];

		hook_set(ignored[i], i == 0 ? 3000 : 0);
		snprintf(path, sizeof(path), "/echo/open%d", i);
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: web.test\r\n\r\n", path);
		one(w, req);
		if (!strstr(buf, "200 OK"))
			fail_msg("fail-open case %d: [%.60s]", i, buf);
		assert_true(up_log_has(u, path));
	}
	pw_free(w);
	mitm_rules_free(rs);
	up_stop(u);
}

static void test_hook_after_and_unreachable(void **state)
{
	(void)state;
	struct up *u = up_start();
	struct mitm_rules *rs = compile("[{\"name\":\"cb\",\"phase\":\"after\",\"path\":\"/resp-headers\","
					"\"callback_id\":\"network_hook_1\"}]");
	struct pw *w = rules_world(rs, hook_sock);

	/* {"msg":"from-callback"} */
	hook_set("{\"action\":\"mutate\",\"response\":{\"headers\":{\"X-Intercepted\":[\"callback\"]},"
		 "\"set_body_base64\":\"eyJtc2ciOiJmcm9tLWNhbGxiYWNrIn0=\"}}", 0);
	one(w, "GET /resp-headers HTTP/1.1\r\nHost: web.test\r\n\r\n");
	assert_non_null(strstr(hook_last, "\"phase\":\"after\""));
	assert_non_null(strstr(hook_last, "\"status_code\":200"));
	assert_non_null(strstr(hook_last, "\"response_headers\":{\"X-Upstream\":[\"1\"]"));
	assert_non_null(strstr(hook_last, "\"is_sse\":false"));
	assert_non_null(strstr(buf, "X-Intercepted: callback\r\n"));
	assert_null(strstr(buf, "X-Upstream"));
	assert_non_null(strstr(buf, "Content-Length: 23\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n{\"msg\":\"from-callback\"}"));
	pw_free(w);
	/* a socket nobody listens on: the exchange goes on unchanged */
	w = rules_world(rs, "/nonexistent/hook.sock");
	one(w, "GET /resp-headers HTTP/1.1\r\nHost: web.test\r\n\r\n");
	assert_non_null(strstr(buf, "X-Upstream: 1\r\n"));
	assert_non_null(strstr(buf, "foo bar foo"));
	pw_free(w);
	mitm_rules_free(rs);
	up_stop(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compile),
		cmocka_unit_test(test_before_rules),
		cmocka_unit_test(test_after_rules),
		cmocka_unit_test(test_hook_before),
		cmocka_unit_test(test_hook_after_and_unreachable),
	};
	return cmocka_run_group_tests(tests, hooks_setup, hooks_teardown);
}
