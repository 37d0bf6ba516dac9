/* cli/specs.h - parsing of the spec strings users pass to `run`, with upstream's messages
 * (docs/cli-compat.md). */
#ifndef ML_CLI_SPECS_H
#define ML_CLI_SPECS_H

#include <stddef.h>

#include "base/err.h"
#include "cli/args.h"
#include "disk/disk.h"
#include "vfs/vfs.h"

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
/* Every --disk spec (disk_spec_parse: @names from the user's volumes, checked against the
 * workspace), then the set (count, duplicates). *out is calloc'd; free with specs_disks_free. */
int specs_disks(const struct strv *specs, const char *volumes_dir, const char *workspace,
		struct disk_spec **out, size_t *n, struct ml_err *e);
void specs_disks_free(struct disk_spec *d, size_t n);
/* --workspace and every -v (§5.1) into a workspace config, then the rpc create checks (§7.4),
 * each with the reference's message. No -v and no --workspace: out stays empty (no workspace).
 * owner: the run's -u (NULL: the image's USER, decided at boot). */
int specs_volumes(const char *workspace, const struct strv *volumes, const char *owner,
		  struct vfs_config *out, struct ml_err *e);

#endif
