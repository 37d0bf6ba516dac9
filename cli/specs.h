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
/* -p [LOCAL:]REMOTE */
int specs_publish(const char *spec, int *local, int *remote, struct ml_err *e);

#endif
