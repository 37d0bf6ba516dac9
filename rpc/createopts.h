/* rpc/createopts.h - the `create` options object of the JSON-RPC protocol (and of a VM's
 * record): decoded, checked in the protocol's order with its exact messages, defaults and
 * merge rules applied, and turned into a struct sandbox_config.
 *
 * Defaults (when a field is absent or not > 0): cpus 1, memory_mb 512, disk_size_mb 5120,
 * timeout_seconds 300 (recorded only). `network` is replaced wholesale when present, so a
 * network object without block_private_ips means false; absent, block_private_ips is true.
 * dns_servers default 8.8.8.8, 8.8.4.4; mtu <= 0 means 1500; hostname defaults to the VM id. */
#ifndef ML_RPC_CREATEOPTS_H
#define ML_RPC_CREATEOPTS_H

#include <jansson.h>
#include <stdbool.h>

#include "base/err.h"
#include "disk/disk.h"
#include "rpc/sandbox.h"
#include "vfs/vfs.h"

struct rpc_image_config {
	char *user, *working_dir;        /* NULL: keep the image's */
	char **entrypoint, **cmd, **env; /* NULL: keep the image's; env: KEY=VALUE, replaces all */
	bool has_entrypoint, has_cmd, has_env;
};

struct rpc_create {
	struct sandbox_config cfg;       /* points into the fields below */
	char *image, *hostname;
	char **dns, **hosts, **allow_hosts;
	char **env;                      /* `env`: KEY=VALUE for every exec */
	struct rpc_image_config image_config;
	bool privileged, launch_entrypoint;
	bool no_network;
	bool intercept;                  /* the interception proxy's condition (allow-list changes at run time) */
	struct mitm_secret *secrets;     /* network.secrets (cfg.secrets), placeholders made */
	size_t n_secrets;
	struct mitm_rules *rules;        /* network.interception.rules, compiled (cfg.rules) */
	char *callback_socket;           /* network.interception.callback_socket */
	const char *workspace;           /* vfs.workspace (exec cwd default), NULL without vfs */
	struct vfs_config vfs;           /* the workspace (cfg.vfs when it has mounts) */
	bool has_vfs;
	struct disk_spec *disks;         /* extra_disks (cfg.disks), checked by rpc_create_check_disks */
	size_t n_disks;
	json_t *record;                  /* the effective options for the VM's record (secrets redacted) */
	char *record_text;               /* the same as JSON text (cfg.record_json) */
};

/* Decodes and checks params. Errors: -EINVAL = the protocol's "invalid params" (e.msg exact),
 * -ENOMEM. (Every option of the protocol is supported: none answers "not supported".) */
int rpc_create_parse(json_t *params, const struct ml_settings *settings, struct rpc_create **out,
		     struct ml_err *e);
/* extra_disks against the host (files exist, hold ext4, mounts valid and not shadowed by the
 * workspace): a failure is the VM's ("invalid extra disk config: ..."). */
int rpc_create_check_disks(struct rpc_create *c, struct ml_err *e);
/* After validation, what the protocol reports as a VM failure (cpus against this host...). */
int rpc_create_check_host(const struct rpc_create *c, struct ml_err *e);
void rpc_create_free(struct rpc_create *c);

/* The command of launch_entrypoint: image ENTRYPOINT + CMD after image_config, as an argv
 * (NULL-terminated, malloc'd; empty = nothing to launch). */
char **rpc_create_entrypoint(const struct rpc_create *c, const struct oci_config *img);
/* The exec environment: image env (or image_config.env) then `env`. Free with strv_free. */
char **rpc_create_exec_env(const struct rpc_create *c, const struct oci_config *img);

#endif
