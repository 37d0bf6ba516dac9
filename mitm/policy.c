/* mitm/policy.c - may the guest connect to this address:port?
 *
 * Decided on the destination address the guest's SYN carries, never on a name the guest
 * could choose: a name is only a way to reach an allow-list entry through what the guest's
 * resolver was told (names.c). So a rebinding answer or a hand-written /etc/hosts line cannot
 * open an address the policy would refuse. Order (README "Policy"): always blocked, gateway,
 * TCP DNS, private ranges, allow-list.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "mitm/intercept.h"

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static bool in_net(uint32_t ip, uint32_t net, unsigned bits)
{
	uint32_t mask = bits ? ~0u << (32 - bits) : 0;

	return (ip & mask) == net;
}

bool mitm_ip_is_private(struct in_addr addr)
{
	uint32_t ip = ntohl(addr.s_addr);

	return in_net(ip, IP4(10, 0, 0, 0), 8) || in_net(ip, IP4(172, 16, 0, 0), 12) ||
	       in_net(ip, IP4(192, 168, 0, 0), 16) || in_net(ip, IP4(127, 0, 0, 0), 8) ||
	       in_net(ip, IP4(169, 254, 0, 0), 16);
}

/* Addresses no entry can open: "this network", loopback, link-local (cloud metadata lives at
 * 169.254.169.254), carrier-grade NAT (tailnets' 100.x addresses, and Alibaba's metadata at
 * 100.100.100.200), Azure's WireServer, IETF protocol assignments, the benchmarking range
 * (often a lab's or a cloud provider's internal network), multicast, reserved and broadcast,
 * and the host's own interfaces (their services are the host's, reachable only through the
 * gateway mapping the user opts into). Returns why, or NULL. */
static const char *always_blocked(const struct mitm *m, uint32_t ip)
{
	static const struct { uint32_t net; unsigned bits; } ranges[] = {
		{ IP4(0, 0, 0, 0), 8 }, { IP4(127, 0, 0, 0), 8 }, { IP4(169, 254, 0, 0), 16 },
		{ IP4(100, 64, 0, 0), 10 }, { IP4(100, 100, 100, 200), 32 }, { IP4(168, 63, 129, 16), 32 },
		{ IP4(192, 0, 0, 0), 24 }, { IP4(198, 18, 0, 0), 15 }, { IP4(224, 0, 0, 0), 4 },
		{ IP4(240, 0, 0, 0), 4 },
	};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (in_net(ip, ranges[i].net, ranges[i].bits))
			return "always blocked";
	for (size_t i = 0; i < m->n_host_addrs; i++)
		if (m->host_addrs[i] == ip)
			return "host address";
	return NULL;
}

bool host_normalize(const char *src, char *dst, size_t cap)
{
	size_t len = strlen(src);

	if (len && src[len - 1] == '.')
		len--;
	if (!len || len >= cap)
		return false;
	for (size_t i = 0; i < len; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[len] = '\0';
	return true;
}

static bool ieq(const char *a, const char *b, size_t n)
{
	return strncasecmp(a, b, n) == 0;
}

/* '*' matches any run, dots included; the classic single-backtrack walk, linear in practice. */
static bool wildcard(const char *p, size_t plen, const char *h, size_t hlen)
{
	size_t pi = 0, hi = 0, star = SIZE_MAX, mark = 0;

	while (hi < hlen) {
		if (pi < plen && p[pi] == '*') {
			star = pi++;
			mark = hi;
		} else if (pi < plen && tolower((unsigned char)p[pi]) == tolower((unsigned char)h[hi])) {
			pi++;
			hi++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			hi = ++mark;
		} else {
			return false;
		}
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

static size_t len_no_dot(const char *s)
{
	size_t n = strlen(s);

	return n && s[n - 1] == '.' ? n - 1 : n;
}

bool mitm_host_glob_match(const char *pattern, const char *host)
{
	size_t plen = len_no_dot(pattern), hlen = len_no_dot(host);

	if (plen == 1 && pattern[0] == '*')
		return true;
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.')  /* suffix, not the apex */
		return hlen > plen - 1 && ieq(host + hlen - (plen - 1), pattern + 1, plen - 1);
	if (plen >= 2 && pattern[plen - 2] == '.' && pattern[plen - 1] == '*')  /* prefix */
		return hlen > plen - 1 && ieq(host, pattern, plen - 1);
	if (memchr(pattern, '*', plen))
		return wildcard(pattern, plen, host, hlen);
	return hlen == plen && ieq(host, pattern, plen);
}

bool allow_wants_name(const struct mitm *m, const char *name)
{
	for (size_t i = 0; i < m->n_allow; i++) {
		const struct allow_entry *a = &m->allow[i];
		if ((a->kind == ENTRY_NAME || a->kind == ENTRY_ANY) && mitm_host_glob_match(a->glob, name))
			return true;
	}
	return false;
}

static bool port_ok(const struct allow_entry *a, uint16_t port)
{
	return !a->port || a->port == port;
}

/* A name entry reached through DNS opens only its own port, or the web's two without one:
 * the name's zone chooses the address, so a name must not also open every port there. */
static bool name_port_ok(const struct allow_entry *a, uint16_t port)
{
	return a->port ? a->port == port : port == 80 || port == 443;
}

/* An IPv4-literal entry for exactly ip (and this port): lifts the private and gateway blocks. */
static bool explicit_allow(const struct mitm *m, uint32_t ip, uint16_t port)
{
	for (size_t i = 0; i < m->n_allow; i++)
		if (m->allow[i].kind == ENTRY_IP && m->allow[i].ip == ip && port_ok(&m->allow[i], port))
			return true;
	return false;
}

/* Address entries (literals, address globs, "*") match the dotted address; name entries a
 * name learned for it that has not expired. *via: the name that matched, if one did. */
static bool allow_list_match(const struct mitm *m, uint32_t ip, uint16_t port, const char **via)
{
	struct in_addr a = { .s_addr = htonl(ip) };
	char dotted[INET_ADDRSTRLEN];
	int64_t now = mitm_clock_ms();

	*via = NULL;
	if (!m->n_allow)
		return true;
	inet_ntop(AF_INET, &a, dotted, sizeof(dotted));
	for (size_t i = 0; i < m->n_allow; i++) {
		const struct allow_entry *ae = &m->allow[i];
		int32_t cur = NAMES_ITER_START;
		const char *name;

		if (ae->kind == ENTRY_IP || ae->kind == ENTRY_ADDR_GLOB || ae->kind == ENTRY_ANY) {
			if (port_ok(ae, port) && mitm_host_glob_match(ae->glob, dotted))
				return true;
			continue;
		}
		if (ae->kind != ENTRY_NAME || !name_port_ok(ae, port))
			continue;
		while ((name = names_next(&m->names, ip, now, &cur)))
			if (mitm_host_glob_match(ae->glob, name)) {
				*via = name;
				return true;
			}
	}
	return false;
}

static bool is_dns_server(const struct mitm *m, uint32_t ip)
{
	for (size_t i = 0; i < m->cfg.n_dns; i++)
		if (ntohl(m->cfg.dns[i].sin_addr.s_addr) == ip)
			return true;
	return false;
}

void policy_event(struct mitm *m, bool blocked, bool dns, const struct sockaddr_in *dst, const char *host,
		  uint16_t qtype, const char *reason)
{
	struct mitm_event ev = { .dns = dns, .blocked = blocked, .host = host, .qtype = qtype, .reason = reason };

	if (!m->cfg.event)
		return;
	if (dst)
		ev.dst = *dst;
	m->cfg.event(m->cfg.arg, &ev);
}

static int deny(struct mitm *m, uint64_t *counter, const struct sockaddr_in *dst, const char *why)
{
	uint32_t ip = dst ? ntohl(dst->sin_addr.s_addr) : 0;

	(*counter)++;
	ml_debug("mitm: deny %u.%u.%u.%u:%u (%s)", ip >> 24, ip >> 16 & 255, ip >> 8 & 255, ip & 255,
		 dst ? ntohs(dst->sin_port) : 0, why);
	policy_event(m, true, false, dst, NULL, 0, why);
	return -EACCES;
}

static int allow(struct mitm *m, const struct sockaddr_in *dst, const char *via, const char *why)
{
	policy_event(m, false, false, dst, via, 0, why);
	return 0;
}

int mitm_connect_check(struct mitm *m, const struct sockaddr *dst)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)dst;
	const char *why, *via;
	uint32_t ip;
	uint16_t port;

	if (!dst || dst->sa_family != AF_INET)
		return deny(m, &m->st.denied_blocked, NULL, "not IPv4");
	ip = ntohl(sin->sin_addr.s_addr);
	port = ntohs(sin->sin_port);
	if ((why = always_blocked(m, ip)))
		return deny(m, &m->st.denied_blocked, sin, why);
	if (ip == m->dns_alias && (port != 53 || !m->cfg.n_dns))
		return deny(m, &m->st.denied_blocked, sin, "DNS alias, not TCP/53");
	if (ip == m->gateway)
		return explicit_allow(m, ip, port) ? allow(m, sin, NULL, "gateway allowed")
						   : deny(m, &m->st.denied_gateway, sin, "gateway");
	if (intercept_port(m, port))
		return 0;   /* checked by name once the proxy has read the Host or the SNI (its events) */
	if (port == 53 && (ip == m->dns_alias || is_dns_server(m, ip)))
		return allow(m, sin, NULL, "DNS server");
	if (m->cfg.block_private_ips && mitm_ip_is_private(sin->sin_addr) && !explicit_allow(m, ip, port))
		return deny(m, &m->st.denied_private, sin, "private address");
	if (!allow_list_match(m, ip, port, &via))
		return deny(m, &m->st.denied_allowlist, sin, "host not in allowlist");
	return allow(m, sin, via, m->n_allow ? "allowlist" : "no allowlist");
}

static bool dns_type_ok(const struct dnswire_query *q)
{
	return q->qclass == DNSWIRE_CLASS_IN &&
	       (q->qtype == DNSWIRE_TYPE_A || q->qtype == DNSWIRE_TYPE_AAAA || q->qtype == DNSWIRE_TYPE_CNAME ||
		q->qtype == DNSWIRE_TYPE_SVCB || q->qtype == DNSWIRE_TYPE_HTTPS);
}

bool mitm_dns_allowed(struct mitm *m, const struct dnswire_query *q, const struct sockaddr_in *server)
{
	const char *why = NULL;

	if (!m->n_allow)
		return true;
	if (!q->host_name)
		why = "DNS name not a host name";
	else if (!dns_type_ok(q))
		why = "DNS type not allowed";
	else if (!allow_wants_name(m, q->name) && !alias_origin(m, q->name, mitm_clock_ms()))
		why = "DNS name not in allowlist";
	if (!why)
		return true;
	m->st.dns_refused++;
	ml_debug("mitm: DNS refused: %s type %u (%s)", q->host_name ? q->name : "?", q->qtype, why);
	policy_event(m, true, true, server, q->host_name ? q->name : NULL, q->qtype, why);
	return false;
}

void policy_upstream(const struct mitm *m, const struct sockaddr_in *orig, struct sockaddr_in *up)
{
	uint32_t ip = ntohl(orig->sin_addr.s_addr);

	*up = *orig;
	if (ip == m->gateway) {
		/* The guest's "host": like QEMU user networking's 10.0.2.2, the host's loopback. */
		up->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return;
	}
	if (ntohs(orig->sin_port) != 53)
		return;
	if (ip == m->dns_alias && m->cfg.n_dns) {
		*up = m->cfg.dns[0];
		return;
	}
	for (size_t i = 0; i < m->cfg.n_dns; i++)
		if (ntohl(m->cfg.dns[i].sin_addr.s_addr) == ip) {
			*up = m->cfg.dns[i];  /* its configured port (slirpnet does the same for UDP) */
			return;
		}
}

/* ---- shared with the intercepting proxies (decide.c) ---- */
bool policy_addr_blocked(const struct mitm *m, uint32_t ip)
{
	return always_blocked(m, ip) || ip == m->dns_alias;
}

bool policy_addr_explicit(const struct mitm *m, uint32_t ip, uint16_t port)
{
	return explicit_allow(m, ip, port);
}

/* By name (the Host / SNI the guest asked for, or the dotted address without one): the
 * allow-list's globs, nothing learned. Name entries match names, address entries addresses. */
bool policy_name_allowed(const struct mitm *m, const char *host, uint16_t port)
{
	struct in_addr lit;
	bool is_addr = inet_pton(AF_INET, host, &lit) == 1;

	if (!m->n_allow)
		return true;
	for (size_t i = 0; i < m->n_allow; i++) {
		const struct allow_entry *a = &m->allow[i];
		bool kind_ok = a->kind == ENTRY_ANY || (is_addr ? a->kind == ENTRY_IP || a->kind == ENTRY_ADDR_GLOB
							       : a->kind == ENTRY_NAME);

		if (kind_ok && port_ok(a, port) && mitm_host_glob_match(a->glob, host))
			return true;
	}
	return false;
}
