/* mitm/mitm.c - creation, teardown and counters of the per-VM flow handler. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/loop.h"
#include "mitm/intercept.h"

int64_t (*mitm_clock_ms)(void) = ml_now_ms;

static void set_defaults(struct mitm_config *c)
{
	if (!c->gateway.s_addr)
		c->gateway.s_addr = htonl(0x0a000202);   /* 10.0.2.2 */
	if (!c->dns_alias.s_addr)
		c->dns_alias.s_addr = htonl(0x0a000203); /* 10.0.2.3 */
	if (!c->connect_timeout_ms)
		c->connect_timeout_ms = 10000;
	if (!c->idle_timeout_ms)
		c->idle_timeout_ms = 3600000;
	if (!c->half_close_ms)
		c->half_close_ms = 300000;
	if (!c->max_flows)
		c->max_flows = 1024;
	if (c->n_dns > MITM_MAX_DNS)
		c->n_dns = MITM_MAX_DNS;
}

/* The host's own IPv4 addresses, read once: a guest must not reach the host's services by
 * dialing its LAN address (only the opt-in gateway mapping leads to the host). */
static int read_host_addrs(struct mitm *m, struct ml_err *e)
{
	struct ifaddrs *ifa, *i;
	size_t n = 0;

	if (getifaddrs(&ifa) < 0)
		return ml_err_set(e, -errno, "mitm: getifaddrs");
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
			n++;
	m->host_addrs = calloc(n ? n : 1, sizeof(*m->host_addrs));
	if (!m->host_addrs) {
		freeifaddrs(ifa);
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	}
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
			m->host_addrs[m->n_host_addrs++] =
				ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
	freeifaddrs(ifa);
	return 0;
}

static int learn_add_hosts(struct mitm *m, const struct mitm_config *cfg, struct ml_err *e)
{
	char norm[NAME_MAX_LEN + 1];

	if (!m->allow_has_names)
		return 0;  /* only literal entries: names can never matter */
	if (names_init(&m->names, (uint32_t)cfg->n_add_hosts) < 0)
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	for (size_t i = 0; i < cfg->n_add_hosts; i++) {
		const struct mitm_add_host *h = &cfg->add_hosts[i];

		if (!h->host || !host_normalize(h->host, norm, sizeof(norm)) ||
		    !allow_wants_name(m, norm))
			continue;
		if (names_add(&m->names, norm, ntohl(h->ip.s_addr), NAMES_FOREVER) < 0)
			return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	}
	return 0;
}

/* The allow-list, with the hosts of every secret appended (reference/rpc.md §7.5: this turns
 * an empty "allow everything" list into a restrictive one). */
static int parse_allow(struct mitm *m, const struct mitm_config *cfg, struct ml_err *e)
{
	size_t n = cfg->allow_hosts ? cfg->n_allow_hosts : 0, k = 0;
	const struct mitm_intercept *ic = cfg->intercept;
	char **all;
	int r;

	for (size_t i = 0; ic && i < ic->n_secrets; i++)
		k += ic->secrets[i].n_hosts;
	if (!k)
		return allow_parse(m, cfg->allow_hosts, n, e);
	if (!(all = calloc(n + k, sizeof(*all))))
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	if (n)
		memcpy(all, cfg->allow_hosts, n * sizeof(*all));
	for (size_t i = 0; i < ic->n_secrets; i++)
		for (size_t j = 0; j < ic->secrets[i].n_hosts; j++)
			all[n++] = ic->secrets[i].hosts[j];
	r = allow_parse(m, all, n, e);
	free(all);
	return r;
}

int mitm_new(const struct mitm_config *cfg, struct mitm **out, struct ml_err *e)
{
	struct mitm *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	m->cfg = *cfg;
	m->cfg.allow_hosts = NULL;
	m->cfg.add_hosts = NULL;
	m->cfg.n_add_hosts = 0;
	m->cfg.intercept = NULL;
	m->extra_idx = -1;
	set_defaults(&m->cfg);
	m->gateway = ntohl(m->cfg.gateway.s_addr);
	m->dns_alias = ntohl(m->cfg.dns_alias.s_addr);
	m->st.bytes_per_flow_idle = sizeof(struct mitm_flow) + sizeof(struct mitm_flow *) +
				    2 * sizeof(struct pollfd);
	m->st.bytes_per_flow_max = m->st.bytes_per_flow_idle + 2 * MITM_BUF_CAP;
	m->scratch = malloc(MITM_BUF_CAP);
	if (!m->scratch)
		r = ml_err_set(e, -ENOMEM, "mitm: out of memory");
	else if ((r = parse_allow(m, cfg, e)) >= 0 && (r = read_host_addrs(m, e)) >= 0 &&
		 (r = learn_add_hosts(m, cfg, e)) >= 0)
		r = intercept_init(m, cfg, e);
	if (r < 0) {
		mitm_free(m);
		return r;
	}
	*out = m;
	return 0;
}

void mitm_free(struct mitm *m)
{
	if (!m)
		return;
	flows_free_all(m);
	intercept_free(m);
	names_free(&m->names);
	allow_free(m);
	free(m->host_addrs);
	free(m->scratch);
	free(m);
}

void mitm_stats(const struct mitm *m, struct mitm_stats *st)
{
	*st = m->st;
	st->flows_active = m->n_flows;
}
