/* tests/unit/mitm_allowlist_test.c - the allow-list as the guest and the user meet it, no
 * sockets: the one validator (good entries, and each dangerous glob refused with its reason),
 * a learned name bound to its entry's port (80/443 without one) while address entries open
 * every port, the added always-blocked ranges refused and counted, the list changed while
 * running (set, add, delete, nothing changed on a bad entry, names learned only once an entry
 * wants them), and the events each verdict reports. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/cleanup.h"
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

struct seen {
	int n;
	struct mitm_event last;
	char host[256], reason[64];
};

static void on_event(void *arg, const struct mitm_event *ev)
{
	struct seen *s = arg;

	s->n++;
	s->last = *ev;
	snprintf(s->host, sizeof(s->host), "%s", ev->host ? ev->host : "");
	snprintf(s->reason, sizeof(s->reason), "%s", ev->reason);
}

static struct mitm *make(const char **allow, size_t n, struct seen *seen)
{
	struct mitm_config c = { .allow_hosts = (char **)allow, .n_allow_hosts = n, .block_private_ips = true,
				 .n_dns = 1, .event = seen ? on_event : NULL, .arg = seen };
	struct ml_err e = { 0 };
	struct mitm *m = NULL;

	c.dns[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(53),
					 .sin_addr = { htonl(0x08080808) } };
	if (mitm_new(&c, &m, &e) < 0)
		fail_msg("mitm_new: %s", e.msg);
	return m;
}

static int check(struct mitm *m, const char *ip, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };

	assert_int_equal(inet_pton(AF_INET, ip, &s.sin_addr), 1);
	return mitm_connect_check(m, (struct sockaddr *)&s);
}

#define ALLOWED(m, ip, port) assert_int_equal(check(m, ip, port), 0)
#define DENIED(m, ip, port)  assert_int_equal(check(m, ip, port), -EACCES)

static void learn(struct mitm *m, const char *name, const char *ip)
{
	struct dnswire_answer a = { .n = 1, .ttl_s = 300 };

	snprintf(a.name, sizeof(a.name), "%s", name);
	assert_int_equal(inet_pton(AF_INET, ip, &a.addrs[0]), 1);
	mitm_dns_learn(m, &a);
}

static void good_entries_pass_the_validator(void **state)
{
	static const char *good[] = {
		"api.github.com", "API.GitHub.com.", "*.github.com", "*.pypi.org:443", "api-*.example.com",
		"*-api.github.com", "a*b.example.com", "*", "*:443", "93.184.216.34", "10.0.2.2:8080",
		"93.184.*", "10.*.*.*", "*.3.4", " web.test ", "under_score.test", "::1", "x.y.z:65535",
	};
	struct ml_err e;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (mitm_allow_host_check(good[i], &e) != 0)
			fail_msg("\"%s\" refused: %s", good[i], e.msg);
}

static void dangerous_globs_are_refused_with_their_reason(void **state)
{
	static const struct { const char *entry, *why; } bad[] = {
		{ "github.*", "last label" },            /* github.attacker.tld */
		{ "github.c*", "last label" },
		{ "example*", "last label" },
		{ "api.*.example.com", "bare '*' label is allowed only first" },
		{ "*.*.example.com", "bare '*' label is allowed only first" },
		{ "*github.com", "two whole labels" },     /* evilgithub.com */
		{ "*.com", "two whole labels" },           /* every .com name */
		{ "api*.com", "two whole labels" },
		{ "a..b", "empty label" },
		{ ".example.com", "empty label" },
		{ "exa mple.com", "invalid character ' '" },
		{ "example.com/x", "invalid character '/'" },
		{ "ex\x01.com", "invalid character \\x01" },
		{ "example.com:0", "bad port" },
		{ "example.com:http", "bad port" },
		{ "1:2:zz", "not an IPv6 address" },
		{ "", "empty host" },
		{ ":443", "empty host" },
	};
	struct ml_err e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		if (mitm_allow_host_check(bad[i].entry, &e) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i].entry);
		if (!strstr(e.msg, "invalid allow-host") || !strstr(e.msg, bad[i].why) || strchr(e.msg, '\n'))
			fail_msg("\"%s\": message [%s], wanted [%s] on one line", bad[i].entry, e.msg, bad[i].why);
	}
}

static void a_learned_name_opens_only_its_entrys_port(void **state)
{
	const char *allow[] = { "*.amazonaws.com", "git.example.com:22", "93.184.216.34", "93.185.*" };
	struct mitm *m = make(allow, 4, NULL);

	(void)state;
	/* *.amazonaws.com names an address the zone chose: only the web's ports there */
	learn(m, "ec2-1-2-3-4.compute-1.amazonaws.com", "1.2.3.4");
	ALLOWED(m, "1.2.3.4", 443);
	ALLOWED(m, "1.2.3.4", 80);
	DENIED(m, "1.2.3.4", 22);
	DENIED(m, "1.2.3.4", 6379);
	/* an entry with a port opens that port only */
	learn(m, "git.example.com", "5.6.7.8");
	ALLOWED(m, "5.6.7.8", 22);
	DENIED(m, "5.6.7.8", 443);
	/* address entries are the user's own choice of address: every port */
	ALLOWED(m, "93.184.216.34", 22);
	ALLOWED(m, "93.185.1.1", 5432);
	/* an address glob never matches a name, even a name made of digits */
	learn(m, "93.185.1.2.example.net", "9.9.9.9");
	DENIED(m, "9.9.9.9", 443);
	mitm_free(m);
}

static void the_added_ranges_are_always_blocked_and_counted(void **state)
{
	static const char *blocked[] = { "100.64.0.1", "100.100.100.200", "100.127.255.254", "168.63.129.16",
					 "192.0.0.1", "192.0.0.170", "198.18.0.1", "198.19.255.255" };
	const char *allow[] = { "*", "100.100.100.200", "168.63.129.16", "198.18.0.1" };
	struct seen seen = { 0 };
	struct mitm *m = make(allow, 4, &seen), *open_m = make(NULL, 0, NULL);
	struct mitm_stats st;

	(void)state;
	for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
		DENIED(m, blocked[i], 80);
		DENIED(open_m, blocked[i], 80);
		assert_string_equal(seen.reason, "always blocked");
	}
	mitm_stats(m, &st);
	assert_int_equal(st.denied_blocked, sizeof(blocked) / sizeof(blocked[0]));
	/* their neighbours are ordinary public addresses */
	ALLOWED(m, "100.63.255.255", 80);
	ALLOWED(m, "100.128.0.1", 80);
	ALLOWED(m, "168.63.129.17", 80);
	ALLOWED(m, "192.0.1.1", 80);
	ALLOWED(m, "198.17.255.255", 80);
	ALLOWED(m, "198.20.0.1", 80);
	mitm_free(m);
	mitm_free(open_m);
}

static void strv_len_is(char **v, size_t want)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	assert_int_equal(n, want);
}

static void the_list_changes_while_running(void **state)
{
	const char *allow[] = { "web.test" };
	struct mitm *m = make(allow, 1, NULL);
	struct ml_err e = { 0 };
	char *add[] = { "api.test", " web.test", "", "api.test", "1.2.3.4" };
	char *del[] = { "web.test", "nothere.test" };
	char *bad[] = { "ok.test", "github.*" };
	char **changed = NULL, **cur = NULL;

	(void)state;
	learn(m, "api.test", "5.5.5.5");          /* not wanted yet: not remembered */
	DENIED(m, "5.5.5.5", 443);
	assert_int_equal(mitm_allow_update(m, MITM_ALLOW_ADD, add, 5, &changed, &e), 0);
	strv_len_is(changed, 2);                  /* api.test and 1.2.3.4 were new */
	assert_string_equal(changed[0], "api.test");
	assert_string_equal(changed[1], "1.2.3.4");
	strv_free(changed);
	assert_int_equal(mitm_allow_list(m, &cur), 0);
	strv_len_is(cur, 3);
	assert_string_equal(cur[0], "web.test");
	strv_free(cur);
	DENIED(m, "5.5.5.5", 443);                /* learned before it was wanted: still unknown */
	learn(m, "api.test", "5.5.5.5");
	ALLOWED(m, "5.5.5.5", 443);               /* at once, for the next connection */
	ALLOWED(m, "1.2.3.4", 8080);
	/* a bad entry: refused, and nothing changed */
	assert_int_equal(mitm_allow_update(m, MITM_ALLOW_ADD, bad, 2, &changed, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "github.*"));
	assert_null(changed);
	assert_int_equal(mitm_allow_list(m, &cur), 0);
	strv_len_is(cur, 3);
	strv_free(cur);
	/* delete what is there; what is not is ignored */
	assert_int_equal(mitm_allow_update(m, MITM_ALLOW_DELETE, del, 2, &changed, &e), 0);
	strv_len_is(changed, 1);
	assert_string_equal(changed[0], "web.test");
	strv_free(changed);
	learn(m, "web.test", "6.6.6.6");
	DENIED(m, "6.6.6.6", 80);
	/* set: the whole list at once; empty = every host */
	assert_int_equal(mitm_allow_update(m, MITM_ALLOW_SET, NULL, 0, &changed, &e), 0);
	strv_len_is(changed, 0);
	strv_free(changed);
	ALLOWED(m, "6.6.6.6", 22);
	mitm_free(m);
}

static void each_verdict_is_an_event(void **state)
{
	const char *allow[] = { "web.test" };
	struct seen seen = { 0 };
	struct mitm *m = make(allow, 1, &seen);

	(void)state;
	learn(m, "web.test", "198.51.100.10");
	ALLOWED(m, "198.51.100.10", 80);
	assert_false(seen.last.blocked);
	assert_string_equal(seen.host, "web.test");
	assert_string_equal(seen.reason, "allowlist");
	assert_int_equal(ntohs(seen.last.dst.sin_port), 80);
	DENIED(m, "203.0.113.10", 80);
	assert_true(seen.last.blocked);
	assert_false(seen.last.dns);
	assert_string_equal(seen.reason, "host not in allowlist");
	assert_string_equal(seen.host, "");
	DENIED(m, "10.99.0.10", 80);
	assert_string_equal(seen.reason, "private address");
	DENIED(m, "10.0.2.2", 80);
	assert_string_equal(seen.reason, "gateway");
	assert_int_equal(seen.n, 4);
	mitm_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_entries_pass_the_validator),
		cmocka_unit_test(dangerous_globs_are_refused_with_their_reason),
		cmocka_unit_test_setup(a_learned_name_opens_only_its_entrys_port, setup_clock),
		cmocka_unit_test_setup(the_added_ranges_are_always_blocked_and_counted, setup_clock),
		cmocka_unit_test_setup(the_list_changes_while_running, setup_clock),
		cmocka_unit_test_setup(each_verdict_is_an_event, setup_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
