/* tests/unit/mitm_policy_test.c - mitm_connect_check() rule by rule, no sockets: the host
 * globs, the always-blocked set (incl. this host's own addresses), the DNS
 * alias, the gateway opt-in, private ranges and their explicit-allow literals, ports on
 * entries, names learned from DNS answers and --add-host with their TTLs (a fake clock moves
 * time), the learned table's bound, bad entries, and where allowed flows really connect. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

static struct sockaddr_in sin_of(const char *ip, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };

	assert_int_equal(inet_pton(AF_INET, ip, &s.sin_addr), 1);
	return s;
}

static struct in_addr ip_of(const char *ip)
{
	return sin_of(ip, 0).sin_addr;
}

static struct mitm *make(const char **allow, size_t n, bool block_private)
{
	struct mitm_config c = { .allow_hosts = (char **)allow, .n_allow_hosts = n,
				 .block_private_ips = block_private, .n_dns = 2 };
	struct ml_err e = { 0 };
	struct mitm *m = NULL;

	c.dns[0] = sin_of("8.8.8.8", 53);
	c.dns[1] = sin_of("192.168.1.1", 5353);
	if (mitm_new(&c, &m, &e) < 0)
		fail_msg("mitm_new: %s", e.msg);
	return m;
}

/* 0 = allowed, -EACCES = denied. */
static int check(struct mitm *m, const char *ip, uint16_t port)
{
	struct sockaddr_in s = sin_of(ip, port);

	return mitm_connect_check(m, (struct sockaddr *)&s);
}

/* The guest's resolver was told name has these addresses (no CNAMEs). */
static void learn(struct mitm *m, const char *name, const struct in_addr *addrs, size_t n, uint32_t ttl)
{
	struct dnswire_answer a = { .n = n, .ttl_s = ttl };

	snprintf(a.name, sizeof(a.name), "%s", name);
	memcpy(a.addrs, addrs, n * sizeof(*addrs));
	mitm_dns_learn(m, &a);
}

#define ALLOWED(m, ip, port) assert_int_equal(check(m, ip, port), 0)
#define DENIED(m, ip, port)  assert_int_equal(check(m, ip, port), -EACCES)

static void test_globs(void **state)
{
	static const struct { const char *pat, *host; bool want; } cases[] = {
		{ "*", "example.com", true },
		{ "*", "a.b.c", true },
		{ "*.example.com", "api.example.com", true },
		{ "*.example.com", "a.b.example.com", true },
		{ "*.example.com", "example.com", false },        /* not the apex */
		{ "*.example.com", "badexample.com", false },
		{ "*.example.com", ".example.com", false },
		{ "example.*", "example.com", true },
		{ "example.*", "example.co.uk", true },
		{ "example.*", "example", false },
		{ "example.*", "myexample.com", false },
		{ "api-*.example.com", "api-v1.example.com", true },
		{ "api-*.example.com", "api-.example.com", true }, /* '*' may match nothing */
		{ "api-*.example.com", "api-x.eu.example.com", true }, /* and dots */
		{ "api-*.example.com", "api.example.com", false },
		{ "api-*.example.com", "api-v1.example.org", false },
		{ "a*b*c", "axxbyyc", true },
		{ "a*b*c", "axxbyy", false },
		{ "a*b*c", "abcbc", true },
		{ "*abc", "ababc", true },
		{ "example.com", "example.com", true },
		{ "example.com", "www.example.com", false },
		{ "example.com", "example.co", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mitm_host_glob_match(cases[i].pat, cases[i].host) != cases[i].want)
			fail_msg("glob \"%s\" vs \"%s\": want %d", cases[i].pat, cases[i].host,
				 cases[i].want);
}

static void test_globs_ignore_case_and_trailing_dot(void **state)
{
	(void)state;
	assert_true(mitm_host_glob_match("Example.COM", "example.com"));
	assert_true(mitm_host_glob_match("*.example.com", "API.Example.Com"));
	assert_true(mitm_host_glob_match("example.com", "example.com."));
	assert_true(mitm_host_glob_match("example.com.", "example.com"));
	assert_true(mitm_host_glob_match("*.example.com", "www.example.com."));
	assert_true(mitm_host_glob_match("EXAMPLE.*", "example.org"));
	assert_true(mitm_host_glob_match("api-*.Example.com", "API-1.example.COM"));
}

static void test_private_ranges(void **state)
{
	static const struct { const char *ip; bool want; } cases[] = {
		{ "10.0.0.1", true }, { "10.255.255.255", true }, { "172.16.0.1", true },
		{ "172.31.255.255", true }, { "172.32.0.1", false }, { "172.15.255.255", false },
		{ "192.168.0.1", true }, { "192.169.0.1", false }, { "127.0.0.1", true },
		{ "127.255.0.1", true }, { "169.254.169.254", true }, { "169.255.0.1", false },
		{ "11.0.0.1", false }, { "8.8.8.8", false }, { "100.64.0.1", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mitm_ip_is_private(ip_of(cases[i].ip)) != cases[i].want)
			fail_msg("%s: want private=%d", cases[i].ip, cases[i].want);
}

static void test_always_blocked_whatever_the_list_says(void **state)
{
	static const char *blocked[] = { "0.1.2.3", "127.0.0.1", "127.9.9.9", "169.254.169.254",
					 "169.254.1.1", "224.0.0.1", "239.255.255.250",
					 "240.0.0.1", "255.255.255.255" };
	const char *allow[] = { "*", "169.254.169.254", "127.0.0.1" };
	struct mitm *open_m = make(NULL, 0, false), *listed = make(allow, 3, false);
	struct mitm_stats st;

	(void)state;
	for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
		DENIED(open_m, blocked[i], 80);
		DENIED(listed, blocked[i], 80);
	}
	mitm_stats(listed, &st);
	assert_int_equal(st.denied_blocked, sizeof(blocked) / sizeof(blocked[0]));
	assert_int_equal(st.denied_allowlist + st.denied_private + st.denied_gateway, 0);
	ALLOWED(open_m, "93.184.216.34", 80);
	mitm_free(open_m);
	mitm_free(listed);
}

static void test_this_hosts_own_addresses_are_blocked(void **state)
{
	struct ifaddrs *ifa;
	struct mitm *m = make(NULL, 0, false);
	int seen = 0;

	(void)state;
	assert_int_equal(getifaddrs(&ifa), 0);
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		char ip[INET_ADDRSTRLEN];

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof(ip));
		DENIED(m, ip, 22);
		seen++;
	}
	freeifaddrs(ifa);
	assert_true(seen >= 1);  /* at least lo's 127.0.0.1 */
	mitm_free(m);
}

static void test_dns_alias_only_port_53(void **state)
{
	const char *allow[] = { "example.com" };
	struct mitm *m = make(allow, 1, true);
	struct mitm_config c = { 0 };
	struct mitm *no_dns;
	struct ml_err e;
	struct mitm_stats st;

	(void)state;
	ALLOWED(m, "10.0.2.3", 53);  /* TCP DNS, despite the list and the private block */
	DENIED(m, "10.0.2.3", 80);
	DENIED(m, "10.0.2.3", 853);
	mitm_stats(m, &st);
	assert_int_equal(st.denied_blocked, 2);
	mitm_free(m);

	assert_int_equal(mitm_new(&c, &no_dns, &e), 0);
	DENIED(no_dns, "10.0.2.3", 53);  /* nowhere to send it */
	mitm_free(no_dns);
}

static void test_tcp_dns_to_configured_servers(void **state)
{
	const char *allow[] = { "example.com" };
	struct mitm *m = make(allow, 1, true);

	(void)state;
	ALLOWED(m, "8.8.8.8", 53);
	ALLOWED(m, "192.168.1.1", 53);  /* configured, so the private block does not apply */
	DENIED(m, "8.8.8.8", 443);
	DENIED(m, "192.168.1.1", 80);
	DENIED(m, "8.8.4.4", 53);       /* not a configured server */
	mitm_free(m);
}

static void test_gateway_needs_its_literal(void **state)
{
	const char *lit[] = { "10.0.2.2" }, *port[] = { "10.0.2.2:8080" }, *glob[] = { "10.0.2.*", "*" };
	struct mitm *none = make(NULL, 0, false), *m_lit = make(lit, 1, true);
	struct mitm *m_port = make(port, 1, false), *m_glob = make(glob, 2, false);
	struct mitm_stats st;

	(void)state;
	DENIED(none, "10.0.2.2", 80);
	mitm_stats(none, &st);
	assert_int_equal(st.denied_gateway, 1);
	ALLOWED(m_lit, "10.0.2.2", 80);   /* even with block_private_ips: an explicit allow */
	ALLOWED(m_lit, "10.0.2.2", 5432);
	ALLOWED(m_port, "10.0.2.2", 8080);
	DENIED(m_port, "10.0.2.2", 8081);
	DENIED(m_glob, "10.0.2.2", 80);   /* a glob is not the literal */
	mitm_free(none);
	mitm_free(m_lit);
	mitm_free(m_port);
	mitm_free(m_glob);
}

static void test_custom_gateway_and_alias(void **state)
{
	char *allow[] = { "192.168.50.1" };
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = 1, .n_dns = 1 };
	struct ml_err e;
	struct mitm *m;

	(void)state;
	c.gateway = ip_of("192.168.50.1");
	c.dns_alias = ip_of("192.168.50.3");
	c.dns[0] = sin_of("1.1.1.1", 53);
	assert_int_equal(mitm_new(&c, &m, &e), 0);
	ALLOWED(m, "192.168.50.1", 22);
	ALLOWED(m, "192.168.50.3", 53);
	DENIED(m, "192.168.50.3", 22);
	DENIED(m, "10.0.2.2", 22);  /* not the gateway here: an ordinary unlisted address */
	mitm_free(m);
}

static void test_private_block_and_explicit_allow(void **state)
{
	const char *allow[] = { "192.168.1.10", "10.1.1.1:22", "*" };
	struct mitm *m = make(allow, 3, true), *off = make(NULL, 0, false);
	struct mitm_stats st;

	(void)state;
	DENIED(m, "10.1.2.3", 443);
	DENIED(m, "172.16.0.1", 443);
	DENIED(m, "172.31.255.255", 443);
	DENIED(m, "192.168.1.11", 443);
	ALLOWED(m, "192.168.1.10", 443);  /* the literal lifts the block */
	ALLOWED(m, "10.1.1.1", 22);
	DENIED(m, "10.1.1.1", 23);        /* only on its port */
	ALLOWED(m, "172.32.0.1", 443);
	mitm_stats(m, &st);
	assert_int_equal(st.denied_private, 5);
	ALLOWED(off, "10.1.2.3", 443);    /* without the option private ranges are fine */
	ALLOWED(off, "192.168.1.11", 443);
	mitm_free(m);
	mitm_free(off);
}

static void test_allow_list_addresses_and_ports(void **state)
{
	const char *lit[] = { "93.184.216.34" }, *anyport[] = { "*:443" }, *dotted[] = { "93.184.*" };
	struct mitm *m_lit = make(lit, 1, false), *m_any = make(anyport, 1, false);
	struct mitm *m_dot = make(dotted, 1, false);
	struct mitm_stats st;

	(void)state;
	ALLOWED(m_lit, "93.184.216.34", 80);
	DENIED(m_lit, "1.1.1.1", 80);
	mitm_stats(m_lit, &st);
	assert_int_equal(st.denied_allowlist, 1);
	ALLOWED(m_any, "1.2.3.4", 443);
	DENIED(m_any, "1.2.3.4", 80);
	ALLOWED(m_dot, "93.184.1.1", 80);
	DENIED(m_dot, "93.185.1.1", 80);
	mitm_free(m_lit);
	mitm_free(m_any);
	mitm_free(m_dot);
}

static void test_learned_names_open_their_addresses_until_ttl(void **state)
{
	const char *allow[] = { "*.example.com", "api.other.org:443" };
	struct mitm *m = make(allow, 2, false);
	struct in_addr a[2] = { ip_of("93.184.216.34"), ip_of("93.184.216.35") };
	struct in_addr evil = ip_of("6.6.6.6"), other = ip_of("5.5.5.5");

	(void)state;
	DENIED(m, "93.184.216.34", 443);
	learn(m, "www.example.com", a, 2, 30);  /* TTL raised to 60 s */
	learn(m, "evil.com", &evil, 1, 300);   /* not wanted: not remembered */
	learn(m, "API.Other.ORG.", &other, 1, 300);
	ALLOWED(m, "93.184.216.34", 443);
	ALLOWED(m, "93.184.216.35", 80);
	DENIED(m, "6.6.6.6", 443);
	ALLOWED(m, "5.5.5.5", 443);
	DENIED(m, "5.5.5.5", 80);  /* that entry has a port */
	fake_now += 59 * 1000;
	ALLOWED(m, "93.184.216.34", 443);
	fake_now += 2 * 1000;  /* 61 s: expired */
	DENIED(m, "93.184.216.34", 443);
	ALLOWED(m, "5.5.5.5", 443);
	fake_now += 300 * 1000;
	DENIED(m, "5.5.5.5", 443);
	/* A later answer renews it. */
	learn(m, "www.example.com", a, 1, 120);
	ALLOWED(m, "93.184.216.34", 443);
	mitm_free(m);
}

static void test_ttl_is_capped_at_a_day(void **state)
{
	const char *allow[] = { "example.com" };
	struct mitm *m = make(allow, 1, false);
	struct in_addr a = ip_of("93.184.216.34");

	(void)state;
	learn(m, "example.com", &a, 1, 10000000);
	fake_now += 86399 * 1000LL;
	ALLOWED(m, "93.184.216.34", 443);
	fake_now += 2 * 1000;
	DENIED(m, "93.184.216.34", 443);
	mitm_free(m);
}

static void test_learned_names_still_obey_private_block(void **state)
{
	const char *allow[] = { "*.example.com" };
	struct mitm *m = make(allow, 1, true);
	struct in_addr a = ip_of("10.9.9.9");

	(void)state;
	learn(m, "rebind.example.com", &a, 1, 300);
	DENIED(m, "10.9.9.9", 443);  /* checked on the address: no DNS rebinding */
	mitm_free(m);
}

static void test_add_hosts_never_expire(void **state)
{
	char *allow[] = { "db.internal" };
	struct mitm_add_host hosts[] = { { "DB.internal", { 0 } }, { "other.internal", { 0 } } };
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = 1, .add_hosts = hosts,
				 .n_add_hosts = 2 };
	struct ml_err e;
	struct mitm *m;

	(void)state;
	hosts[0].ip = ip_of("203.0.113.5");
	hosts[1].ip = ip_of("203.0.113.6");
	assert_int_equal(mitm_new(&c, &m, &e), 0);
	ALLOWED(m, "203.0.113.5", 443);
	DENIED(m, "203.0.113.5", 5432);  /* a name entry without a port: 80 and 443 only */
	DENIED(m, "203.0.113.6", 443);
	fake_now += 30LL * 86400 * 1000;
	ALLOWED(m, "203.0.113.5", 443);
	mitm_free(m);
}

static void test_learned_table_is_bounded(void **state)
{
	const char *allow[] = { "*.example.com" };
	struct mitm *m = make(allow, 1, false);
	char name[64], ip[32];

	(void)state;
	for (unsigned i = 0; i <= NAMES_MAX; i++) {  /* one more than fits */
		struct in_addr a = { .s_addr = htonl(0x5d000000u + i) };

		snprintf(name, sizeof(name), "h%u.example.com", i);
		learn(m, name, &a, 1, 3600);
	}
	DENIED(m, "93.0.0.0", 443);  /* the oldest went */
	ALLOWED(m, "93.0.0.1", 443);
	snprintf(ip, sizeof(ip), "93.0.%u.%u", NAMES_MAX >> 8, NAMES_MAX & 255);
	ALLOWED(m, ip, 443);
	mitm_free(m);
}

static void test_bad_entries_are_refused(void **state)
{
	static const char *bad[] = { "example.com:0", "example.com:abc", "example.com:65536",
				     ":80", ".", "example.com:", "github.*", "api.*.example.com", "*.com" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *allow[] = { (char *)bad[i] };
		struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = 1 };
		struct ml_err e = { 0 };
		struct mitm *m = NULL;

		if (mitm_new(&c, &m, &e) != -EINVAL)
			fail_msg("allow-host \"%s\" was accepted", bad[i]);
		assert_null(m);
		assert_non_null(strstr(e.msg, "allow-host"));
	}
}

static void test_blank_entries_are_ignored(void **state)
{
	char *allow[] = { "", "  ", " example.com ", "example.com" };
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = 4 };
	struct ml_err e = { 0 };
	struct mitm *m = NULL;
	char **list = NULL;

	(void)state;
	assert_int_equal(mitm_new(&c, &m, &e), 0);
	assert_int_equal(mitm_allow_list(m, &list), 0);
	assert_string_equal(list[0], "example.com");  /* trimmed, and once */
	assert_null(list[1]);
	for (char **p = list; *p; p++)
		free(*p);
	free(list);
	mitm_free(m);
}

static void test_not_ipv4_is_denied(void **state)
{
	struct mitm *m = make(NULL, 0, false);
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(80) };

	(void)state;
	assert_int_equal(mitm_connect_check(m, (struct sockaddr *)&s6), -EACCES);
	mitm_free(m);
}

static void test_upstream_mapping(void **state)
{
	struct mitm *m = make(NULL, 0, false);
	struct sockaddr_in o, up;
	char ip[INET_ADDRSTRLEN];

	(void)state;
	o = sin_of("10.0.2.2", 8080);
	policy_upstream(m, &o, &up);
	assert_string_equal(inet_ntop(AF_INET, &up.sin_addr, ip, sizeof(ip)), "127.0.0.1");
	assert_int_equal(ntohs(up.sin_port), 8080);
	o = sin_of("10.0.2.3", 53);
	policy_upstream(m, &o, &up);
	assert_string_equal(inet_ntop(AF_INET, &up.sin_addr, ip, sizeof(ip)), "8.8.8.8");
	assert_int_equal(ntohs(up.sin_port), 53);
	o = sin_of("192.168.1.1", 53);  /* a configured server keeps its configured port */
	policy_upstream(m, &o, &up);
	assert_string_equal(inet_ntop(AF_INET, &up.sin_addr, ip, sizeof(ip)), "192.168.1.1");
	assert_int_equal(ntohs(up.sin_port), 5353);
	o = sin_of("93.184.216.34", 443);
	policy_upstream(m, &o, &up);
	assert_memory_equal(&o, &up, sizeof(o));
	mitm_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_globs),
		cmocka_unit_test(test_globs_ignore_case_and_trailing_dot),
		cmocka_unit_test(test_private_ranges),
		cmocka_unit_test_setup(test_always_blocked_whatever_the_list_says, setup_clock),
		cmocka_unit_test_setup(test_this_hosts_own_addresses_are_blocked, setup_clock),
		cmocka_unit_test_setup(test_dns_alias_only_port_53, setup_clock),
		cmocka_unit_test_setup(test_tcp_dns_to_configured_servers, setup_clock),
		cmocka_unit_test_setup(test_gateway_needs_its_literal, setup_clock),
		cmocka_unit_test_setup(test_custom_gateway_and_alias, setup_clock),
		cmocka_unit_test_setup(test_private_block_and_explicit_allow, setup_clock),
		cmocka_unit_test_setup(test_allow_list_addresses_and_ports, setup_clock),
		cmocka_unit_test_setup(test_learned_names_open_their_addresses_until_ttl, setup_clock),
		cmocka_unit_test_setup(test_ttl_is_capped_at_a_day, setup_clock),
		cmocka_unit_test_setup(test_learned_names_still_obey_private_block, setup_clock),
		cmocka_unit_test_setup(test_add_hosts_never_expire, setup_clock),
		cmocka_unit_test_setup(test_learned_table_is_bounded, setup_clock),
		cmocka_unit_test_setup(test_bad_entries_are_refused, setup_clock),
		cmocka_unit_test_setup(test_blank_entries_are_ignored, setup_clock),
		cmocka_unit_test_setup(test_not_ipv4_is_denied, setup_clock),
		cmocka_unit_test_setup(test_upstream_mapping, setup_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
