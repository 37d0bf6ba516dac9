/* mitm/mitm.c - creation, teardown and counters of the per-VM flow handler. */
#include <arpa/inet.h>
#include <errno.h>
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
	if (!c->upstream_buf_budget)
		c->upstream_buf_budget = SOCKBUF_BUDGET_DEFAULT;
	if (c->n_dns > MITM_MAX_DNS)
		c->n_dns = MITM_MAX_DNS;
}

/* --add-host pairs are kept (copied) for the names table, which may only be needed once an
 * entry that matches names is added while the VM runs. */
static int copy_add_hosts(struct mitm *m, const struct mitm_config *cfg)
{
	if (!cfg->n_add_hosts)
		return 0;
	m->add_hosts = calloc(cfg->n_add_hosts, sizeof(*m->add_hosts));
	if (!m->add_hosts)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_add_hosts; i++) {
		const struct mitm_add_host *h = &cfg->add_hosts[i];
		char *copy;
		if (!h->host)
			continue;
		if (!(copy = strdup(h->host)))
			return -ENOMEM;
		m->add_hosts[m->n_add_hosts++] = (struct mitm_add_host){ .host = copy, .ip = h->ip };
	}
	return 0;
}

/* The allow-list, with the hosts of every secret appended (the protocol's rule: this turns
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
		return allow_parse(cfg->allow_hosts, n, &m->allow, &m->n_allow, e);
	if (!(all = calloc(n + k, sizeof(*all))))
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	if (n)
		memcpy(all, cfg->allow_hosts, n * sizeof(*all));
	for (size_t i = 0; i < ic->n_secrets; i++)
		for (size_t j = 0; j < ic->secrets[i].n_hosts; j++)
			all[n++] = ic->secrets[i].hosts[j];
	r = allow_parse(all, n, &m->allow, &m->n_allow, e);
	free(all);
	return r;
}

static int make(struct mitm *m, const struct mitm_config *cfg, struct ml_err *e)
{
	int r;

	if (!(m->scratch = malloc(MITM_BUF_CAP)))
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	if ((r = parse_allow(m, cfg, e)) < 0)
		return r;
	if ((r = hostaddr_read(m, e)) < 0)
		return r;
	hostaddr_watch_open(m);
	sockbuf_init(m);
	if (copy_add_hosts(m, cfg) < 0 || allow_ensure_names(m) < 0)
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	return 0;
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
	m->watch_fd = -1;
	set_defaults(&m->cfg);
	m->gateway = ntohl(m->cfg.gateway.s_addr);
	m->dns_alias = ntohl(m->cfg.dns_alias.s_addr);
	m->st.bytes_per_flow_idle = sizeof(struct mitm_flow) + sizeof(struct mitm_flow *) +
				    2 * sizeof(struct pollfd);
	m->st.bytes_per_flow_max = m->st.bytes_per_flow_idle + 2 * MITM_BUF_CAP;
	if ((r = make(m, cfg, e)) < 0 || (r = intercept_init(m, cfg, e)) < 0) {
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
	dnsflow_free_all(m);
	names_free(&m->names);
	aliases_free(m);
	allow_entries_free(m->allow, m->n_allow);
	for (size_t i = 0; i < m->n_add_hosts; i++)
		free((char *)m->add_hosts[i].host);
	free(m->add_hosts);
	hostaddr_free(m);
	free(m->scratch);
	free(m);
}

void mitm_stats(const struct mitm *m, struct mitm_stats *st)
{
	*st = m->st;
	st->flows_active = m->n_flows;
	st->sockbuf_in_use = m->sockbuf_in_use;
}
