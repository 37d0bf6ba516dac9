/* mitm/decide.c - policy by name for intercepted flows.
 *
 * On TCP/80 and TCP/443 the guest names its host (Host header, TLS SNI); the proxy checks
 * that name against the allow-list globs, resolves it on the host, and dials the address it
 * got — so what the guest's own DNS said, or which address it connected to, does not matter.
 * The address checks run on the address actually dialed: always-blocked ranges and this
 * host's addresses, then the private ranges (unless an IPv4-literal entry allows exactly that
 * address). Names learned from the guest's DNS answers play no part here (they are for the
 * other ports). A flow to the gateway is the exception: the user allowed the gateway by its
 * literal, the upstream is the host's loopback, and the policy host is that literal.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mitm/intercept.h"

bool host_from_authority(const char *auth, char *out, size_t cap)
{
	const char *end;
	size_t n;

	while (*auth == ' ' || *auth == '\t')
		auth++;
	if (*auth == '[') {   /* an IPv6 literal: kept whole (it can never be allowed: no IPv6) */
		end = strchr(auth, ']');
		if (!end)
			return false;
		end++;
	} else {
		end = auth + strcspn(auth, ": \t");
	}
	n = (size_t)(end - auth);
	if (!n || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)auth[i];

		/* letters, digits, '-', '.', '_' (seen in the wild), and the literal's brackets */
		if (!isalnum(c) && !strchr("-._[]:", c))
			return false;
	}
	memcpy(out, auth, n);
	out[n] = '\0';
	return host_normalize(out, out, cap);
}

bool target_add_host(const struct mitm *m, const char *name, uint32_t *ip)
{
	for (size_t i = 0; i < m->icpt->n_add_hosts; i++)
		if (!strcmp(m->icpt->add_hosts[i].name, name)) {
			*ip = m->icpt->add_hosts[i].ip;
			return true;
		}
	return false;
}

static enum verdict deny(struct target *t, const char *reason)
{
	t->reason = reason;
	return V_DENY;
}

/* The checks on an address the proxy would dial. */
static enum verdict addr_verdict(struct mitm *m, struct target *t, uint32_t ip)
{
	struct in_addr a = { .s_addr = htonl(ip) };

	if (policy_addr_blocked(m, ip) || ip == m->gateway)
		return deny(t, "address always blocked");
	if (m->cfg.block_private_ips && mitm_ip_is_private(a) && !policy_addr_explicit(m, ip, t->port))
		return deny(t, "private address blocked");
	t->dial = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(t->port), .sin_addr = a };
	return V_ALLOW;
}

enum verdict target_decide(struct mitm *m, const struct mitm_flow *f, const char *name, struct target *t)
{
	uint32_t dst = ntohl(f->odst.sin_addr.s_addr);
	struct in_addr lit;

	*t = (struct target){ .port = ntohs(f->odst.sin_port) };
	if (dst == m->gateway) {
		/* allowed at SYN time by its literal; the host's loopback, like the relay */
		t->gateway = true;
		inet_ntop(AF_INET, &f->odst.sin_addr, t->host, sizeof(t->host));
		t->dial = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = f->odst.sin_port,
						.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		return V_ALLOW;
	}
	if (!name || !*name)
		inet_ntop(AF_INET, &f->odst.sin_addr, t->host, sizeof(t->host));
	else if (!host_normalize(name, t->host, sizeof(t->host)))
		return deny(t, "host not in allowlist");
	if (!policy_name_allowed(m, t->host, t->port))
		return deny(t, "host not in allowlist");
	if (inet_pton(AF_INET, t->host, &lit) == 1)
		return addr_verdict(m, t, ntohl(lit.s_addr));
	if (strchr(t->host, ':') || strchr(t->host, '['))
		return deny(t, "host not in allowlist");   /* IPv6: the host side dials IPv4 only */
	{
		uint32_t ip;

		if (target_add_host(m, t->host, &ip))
			return addr_verdict(m, t, ip);
	}
	return V_RESOLVE;
}

enum verdict target_pick(struct mitm *m, struct target *t, const struct in_addr *addrs, int n)
{
	enum verdict v = deny(t, "cannot resolve host");

	for (int i = 0; i < n; i++)
		if ((v = addr_verdict(m, t, ntohl(addrs[i].s_addr))) == V_ALLOW)
			return v;
	return v;
}
