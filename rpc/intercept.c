/* rpc/intercept.c - a sandbox's side of network interception (mitm/README.md "Interception"):
 * whether it is on (the protocol's rule: an allow-list entry, secrets, hook rules, or forced),
 * the per-user CA (~/.matchlock/ca.pem, loaded or made by the worker thread), what every exec's
 * environment gets (the CA variables and the secrets' placeholders), and the config the
 * network thread hands to mitm (with the VM's egress.jsonl as the audit trail). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/sandbox_internal.h"

static const char *const ca_vars[] = { "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
				       "NODE_EXTRA_CA_CERTS" };

bool sb_intercept_wanted(const struct sandbox_config *c)
{
	return c->network && (c->intercept || (c->allow_hosts && c->allow_hosts[0]) || c->n_secrets ||
			      c->rules);
}

static int guest_env(struct sandbox *sb)
{
	const struct sandbox_config *c = sb->cfg;
	size_t n = 0, cap = 4 + c->n_secrets + 1;

	sb->guest_env = calloc(cap, sizeof(char *));
	if (!sb->guest_env)
		return -ENOMEM;
	for (size_t i = 0; sb->ca_cert && i < 4; i++) {
		char *kv;

		if (asprintf(&kv, "%s=%s", ca_vars[i], MITM_CA_GUEST_PATH) < 0)
			return -ENOMEM;
		sb->guest_env[n++] = kv;
	}
	for (size_t i = 0; i < c->n_secrets; i++) {
		char *kv;

		if (asprintf(&kv, "%s=%s", c->secrets[i].name, c->secrets[i].placeholder) < 0)
			return -ENOMEM;
		sb->guest_env[n++] = kv;
	}
	return 0;
}

int sb_intercept_prepare(struct sandbox *sb, struct ml_err *e)
{
	const struct sandbox_config *c = sb->cfg;
	int r;

	sb->intercept = sb_intercept_wanted(c);
	if (!sb->intercept)
		return 0;
	if ((r = mitm_ca_load(c->settings->state_dir, &sb->ca_pem, &sb->ca_cert, e)) < 0)
		return ml_err_wrap(e, "network interception: the CA");
	if (asprintf(&sb->audit_path, "%s/egress.jsonl", sb->state_dir) < 0) {
		sb->audit_path = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (guest_env(sb) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	sb->icpt = (struct mitm_intercept){
		.ca_pem = sb->ca_pem, .extra_ca_file = c->settings->ca_file,
		.secrets = c->secrets, .n_secrets = c->n_secrets, .rules = c->rules,
		.callback_socket = c->callback_socket, .audit_path = sb->audit_path,
	};
	return 0;
}

const struct mitm_intercept *sb_intercept_config(struct sandbox *sb)
{
	return sb->intercept ? &sb->icpt : NULL;
}

void sb_intercept_free(struct sandbox *sb)
{
	if (sb->ca_pem)
		explicit_bzero(sb->ca_pem, strlen(sb->ca_pem));
	free(sb->ca_pem);
	free(sb->ca_cert);
	free(sb->audit_path);
	for (char **v = sb->guest_env; v && *v; v++)
		free(*v);
	free(sb->guest_env);
	sb->ca_pem = sb->ca_cert = sb->audit_path = NULL;
	sb->guest_env = NULL;
}
