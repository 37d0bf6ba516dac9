/* cli/specs.h - parsing of the spec strings users pass to `run`, with upstream's messages
 * (docs/cli-compat.md). */
#ifndef ML_CLI_SPECS_H
#define ML_CLI_SPECS_H

#include "base/err.h"
#include "cli/args.h"

/* Builds the environment from --env-file files (in order) then -e specs (in order); later
 * wins. KEY alone takes the host's value. Errors use the reference's wording, e.g.
 * "invalid environment variable: environment variable is not set $KEY". Result "KEY=VALUE". */
int specs_env(const struct strv *files, const struct strv *flags, struct strv *out, struct ml_err *e);
/* Merges two KEY=VALUE lists: entries of over replace same-named ones of base (order kept). */
void specs_env_merge(struct strv *base, char *const *over);
/* --add-host host:ip -> "ip host" line for /etc/hosts. */
int specs_add_host(const char *spec, char **line, struct ml_err *e);
/* --dns-servers entry: an IPv4 literal (the host forwards the guest's queries to it). */
int specs_dns_server(const char *s, struct ml_err *e);
/* --secret NAME=VALUE@host1,host2 or NAME@host1,... (the value from the host's $NAME): split
 * at the last '@', hosts trimmed. Errors "invalid secret \"<spec>\": <reason>" with the
 * reference's reasons. Free with specs_secret_free (it wipes the value). */
struct specs_secret {
	char *name, *value;
	struct strv hosts;
};
int specs_secret(const char *spec, struct specs_secret *out, struct ml_err *e);
void specs_secret_free(struct specs_secret *s);
/* -p [LOCAL:]REMOTE */
int specs_publish(const char *spec, int *local, int *remote, struct ml_err *e);

#endif
