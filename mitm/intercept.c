/* mitm/intercept.c - interception's set-up and its place in the flow table: which flows the
 * proxies take (TCP/80 -> HTTP, TCP/443 -> TLS when a CA is configured), the job fd in the
 * poll array, and the per-round flush of the audit trail. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/proxy.h"
#include "mitm/tls.h"

static void set_defaults(struct mitm_intercept *c)
{
	if (!c->head_timeout_ms)
		c->head_timeout_ms = 30000;
	if (!c->keepalive_ms)
		c->keepalive_ms = 300000;
	if (!c->response_timeout_ms)
		c->response_timeout_ms = 300000;
}

static int copy_add_hosts(struct intercept *ic, const struct mitm_config *cfg)
{
	char norm[NAME_MAX_LEN + 1];

	ic->add_hosts = calloc(cfg->n_add_hosts + 1, sizeof(*ic->add_hosts));
	if (!ic->add_hosts)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_add_hosts; i++) {
		const struct mitm_add_host *h = &cfg->add_hosts[i];
		struct add_host *d = &ic->add_hosts[ic->n_add_hosts];

		if (!h->host || !host_normalize(h->host, norm, sizeof(norm)))
			continue;
		if (!(d->name = strdup(norm)))
			return -ENOMEM;
		d->ip = ntohl(h->ip.s_addr);
		ic->n_add_hosts++;
	}
	return 0;
}

static void open_audit(struct intercept *ic)
{
	struct stat st;

	ic->audit_fd = -1;
	if (!ic->audit_path)
		return;
	ic->audit_fd = open(ic->audit_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (ic->audit_fd < 0) {
		ml_warn("mitm: audit file %s: %s (decisions are not recorded)", ic->audit_path, strerror(errno));
		free(ic->audit_path);
		ic->audit_path = NULL;
		return;
	}
	ic->audit_size = fstat(ic->audit_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int intercept_init(struct mitm *m, const struct mitm_config *cfg, struct ml_err *e)
{
	struct intercept *ic;
	int r;

	if (!cfg->intercept)
		return 0;
	if (!(ic = m->icpt = calloc(1, sizeof(*ic))))
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	ic->audit_fd = -1;
	ic->cfg = *cfg->intercept;
	set_defaults(&ic->cfg);
	ic->cfg.ca_pem = NULL;
	ic->cfg.secrets = NULL;
	ic->cfg.callback_socket = ic->cfg.audit_path = NULL;
	ic->rules = cfg->intercept->rules;
	if ((r = secrets_init(&ic->secrets, cfg->intercept->secrets, cfg->intercept->n_secrets, e)) < 0)
		return r;
	if (copy_add_hosts(ic, cfg) < 0 || worker_new(&ic->worker) < 0)
		return ml_err_set(e, -ENOMEM, "mitm: out of resources for interception");
	if (cfg->intercept->callback_socket &&
	    !(ic->callback_socket = strdup(cfg->intercept->callback_socket)))
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	if (cfg->intercept->audit_path && !(ic->audit_path = strdup(cfg->intercept->audit_path)))
		return ml_err_set(e, -ENOMEM, "mitm: out of memory");
	open_audit(ic);
	if (cfg->intercept->ca_pem &&
	    (r = tls_ctx_new(cfg->intercept->ca_pem, cfg->intercept->extra_ca_file, &ic->tls, e)) < 0)
		return r;
	return 0;
}

void intercept_free(struct mitm *m)
{
	struct intercept *ic = m->icpt;

	if (!ic)
		return;
	audit_flush(m);
	if (ic->audit_fd >= 0)
		close(ic->audit_fd);
	iob_free(&ic->audit_buf);
	free(ic->audit_path);
	worker_free(ic->worker);
	pool_free_all(m);
	tls_ctx_free(ic->tls);
	secrets_free(&ic->secrets);
	for (size_t i = 0; i < ic->n_add_hosts; i++)
		free(ic->add_hosts[i].name);
	free(ic->add_hosts);
	free(ic->callback_socket);
	free(ic);
	m->icpt = NULL;
}

bool intercept_port(const struct mitm *m, uint16_t port)
{
	return m->icpt && (port == 80 || (port == 443 && m->icpt->tls));
}

const struct flow_ops *intercept_handler(struct mitm *m, const struct sockaddr_in *dst)
{
	uint16_t port = ntohs(dst->sin_port);

	if (!intercept_port(m, port))
		return NULL;
	return port == 80 ? &http_ops : &https_ops;
}

int intercept_poll_fd(const struct mitm *m)
{
	return m->icpt ? worker_fd(m->icpt->worker) : -1;
}

void intercept_jobs_done(struct mitm *m)
{
	struct job *j = worker_take(m->icpt->worker), *next;

	for (; j; j = next) {
		struct mitm_flow *f = flow_by_id(m, j->flow_id);

		next = j->next;
		if (!f || !f->ops->job_done)
			job_free(j);
		else
			(void)f->ops->job_done(m, f, j);
	}
}

void intercept_round_end(struct mitm *m)
{
	if (m->icpt)
		audit_flush(m);
}
