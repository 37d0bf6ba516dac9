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
 * 169.254.169.254), multicast, reserved and broadcast, and the host's own interfaces (their
 * services are the host's, reachable only through the gateway mapping the user opts into). */
static bool always_blocked(const struct mitm *m, uint32_t ip)
{
	if (in_net(ip, 0, 8) || in_net(ip, IP4(127, 0, 0, 0), 8) ||
	    in_net(ip, IP4(169, 254, 0, 0), 16) || in_net(ip, IP4(224, 0, 0, 0), 4) ||
	    in_net(ip, IP4(240, 0, 0, 0), 4))
		return true;
	for (size_t i = 0; i < m->n_host_addrs; i++)
		if (m->host_addrs[i] == ip)
			return true;
	return false;
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

static int parse_entry(const char *s, struct allow_entry *a, struct ml_err *e)
{
	const char *colon = strrchr(s, ':');
	char host[NAME_MAX_LEN + 1], *end;
	size_t hlen = strlen(s);
	struct in_addr ip;

	/* One colon = glob:port. Several = an IPv6 literal, kept whole: it can never match an
	 * IPv4 flow (the guest has no IPv6), so it is harmless. */
	if (colon && strchr(s, ':') == colon) {
		unsigned long port;

		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (!isdigit((unsigned char)colon[1]) || *end || errno || port < 1 || port > 65535)
			return ml_err_set(e, -EINVAL, "invalid allow-host \"%s\": bad port", s);
		a->port = (uint16_t)port;
		hlen = (size_t)(colon - s);
	}
	if (hlen > NAME_MAX_LEN)
		return ml_err_set(e, -EINVAL, "invalid allow-host \"%s\": too long", s);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (!host_normalize(host, host, sizeof(host)))
		return ml_err_set(e, -EINVAL, "invalid allow-host \"%s\": empty host", s);
	a->glob = strdup(host);
	if (!a->glob)
		return ml_err_set(e, -ENOMEM, "allow-host: out of memory");
	if (inet_pton(AF_INET, a->glob, &ip) == 1) {
		a->is_ip = true;
		a->ip = ntohl(ip.s_addr);
	}
	return 0;
}

int allow_parse(struct mitm *m, char **hosts, size_t n, struct ml_err *e)
{
	if (!n)
		return 0;
	m->allow = calloc(n, sizeof(*m->allow));
	if (!m->allow)
		return ml_err_set(e, -ENOMEM, "allow-host: out of memory");
	for (size_t i = 0; i < n; i++) {
		int r = parse_entry(hosts[i], &m->allow[i], e);

		m->n_allow = i + 1;  /* so allow_free frees a partial list */
		if (r < 0)
			return r;
		if (!m->allow[i].is_ip)
			m->allow_has_names = true;
	}
	return 0;
}

void allow_free(struct mitm *m)
{
	for (size_t i = 0; i < m->n_allow; i++)
		free(m->allow[i].glob);
	free(m->allow);
	m->allow = NULL;
	m->n_allow = 0;
}

bool allow_wants_name(const struct mitm *m, const char *name)
{
	for (size_t i = 0; i < m->n_allow; i++)
		if (!m->allow[i].is_ip && mitm_host_glob_match(m->allow[i].glob, name))
			return true;
	return false;
}

static bool port_ok(const struct allow_entry *a, uint16_t port)
{
	return !a->port || a->port == port;
}

/* An IPv4-literal entry for exactly ip (and this port): lifts the private and gateway blocks. */
static bool explicit_allow(const struct mitm *m, uint32_t ip, uint16_t port)
{
	for (size_t i = 0; i < m->n_allow; i++)
		if (m->allow[i].is_ip && m->allow[i].ip == ip && port_ok(&m->allow[i], port))
			return true;
	return false;
}

/* Entries match the dotted address itself (literals, "*", "93.184.*") or a name the guest
 * learned for it that has not expired. */
static bool allow_list_match(const struct mitm *m, uint32_t ip, uint16_t port)
{
	struct in_addr a = { .s_addr = htonl(ip) };
	char dotted[INET_ADDRSTRLEN];
	int64_t now = mitm_clock_ms();

	if (!m->n_allow)
		return true;
	inet_ntop(AF_INET, &a, dotted, sizeof(dotted));
	for (size_t i = 0; i < m->n_allow; i++) {
		const struct allow_entry *ae = &m->allow[i];
		int32_t cur = NAMES_ITER_START;
		const char *name;

		if (!port_ok(ae, port))
			continue;
		if (mitm_host_glob_match(ae->glob, dotted))
			return true;
		if (ae->is_ip)
			continue;
		while ((name = names_next(&m->names, ip, now, &cur)))
			if (mitm_host_glob_match(ae->glob, name))
				return true;
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

static int deny(uint64_t *counter, uint32_t ip, uint16_t port, const char *why)
{
	(*counter)++;
	ml_debug("mitm: deny %u.%u.%u.%u:%u (%s)", ip >> 24, ip >> 16 & 255, ip >> 8 & 255,
		 ip & 255, port, why);
	return -EACCES;
}

int mitm_connect_check(struct mitm *m, const struct sockaddr *dst)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)dst;
	uint32_t ip;
	uint16_t port;

	if (!dst || dst->sa_family != AF_INET)
		return deny(&m->st.denied_blocked, 0, 0, "not IPv4");
	ip = ntohl(sin->sin_addr.s_addr);
	port = ntohs(sin->sin_port);
	if (always_blocked(m, ip))
		return deny(&m->st.denied_blocked, ip, port, "always blocked");
	if (ip == m->dns_alias && (port != 53 || !m->cfg.n_dns))
		return deny(&m->st.denied_blocked, ip, port, "DNS alias, not TCP/53");
	if (ip == m->gateway)
		return explicit_allow(m, ip, port) ? 0 : deny(&m->st.denied_gateway, ip, port, "gateway");
	if (intercept_port(m, port))
		return 0;   /* checked by name once the proxy has read the Host or the SNI */
	if (port == 53 && (ip == m->dns_alias || is_dns_server(m, ip)))
		return 0;
	if (m->cfg.block_private_ips && mitm_ip_is_private(sin->sin_addr) && !explicit_allow(m, ip, port))
		return deny(&m->st.denied_private, ip, port, "private");
	if (!allow_list_match(m, ip, port))
		return deny(&m->st.denied_allowlist, ip, port, "not in the allow-list");
	return 0;
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

/* By name (the Host / SNI the guest asked for): the allow-list globs, nothing learned. */
bool policy_name_allowed(const struct mitm *m, const char *host, uint16_t port)
{
	if (!m->n_allow)
		return true;
	for (size_t i = 0; i < m->n_allow; i++)
		if (port_ok(&m->allow[i], port) && mitm_host_glob_match(m->allow[i].glob, host))
			return true;
	return false;
}
