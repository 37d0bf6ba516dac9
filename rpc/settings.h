/* rpc/settings.h - every knob the environment turns, read once by main (settings_from_env) and
 * passed down inside struct sandbox_config: code below main never reads the environment. */
#ifndef ML_RPC_SETTINGS_H
#define ML_RPC_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct ml_settings {
	char *cache_dir;        /* $XDG_CACHE_HOME/matchlock or ~/.cache/matchlock */
	char *state_dir;        /* ~/.matchlock */
	char *volumes_dir;      /* <cache_dir>/volumes: named volumes */
	char *holders_dir;      /* <state_dir>/disks: which VM holds which disk (disk/README.md) */
	char *data_dir;         /* $MATCHLOCK_DATA_DIR (NULL: <exe>/../lib/matchlock) */
	char *kernel;           /* $MATCHLOCK_KERNEL (NULL: <data>/kernel/vmlinuz) */
	char *agent;            /* $MATCHLOCK_GUEST_AGENT (NULL: <data>/agent) */
	char *accel;            /* $MATCHLOCK_ACCEL: kvm, tcg or auto (NULL) */
	char *engine;           /* $MATCHLOCK_QEMU (NULL: qemu-system-x86_64 from $PATH) */
	bool qemu_user_net;     /* $MATCHLOCK_NET_BACKEND=qemu-user: benchmark baseline */
	int boot_timeout_s;     /* $MATCHLOCK_BOOT_TIMEOUT, default 60 */
	uint64_t log_budget;    /* $MATCHLOCK_LOG_BUDGET_MB in bytes; default 64 MiB */
	char *ca_file;          /* $SSL_CERT_FILE: extra CAs (registries, intercepted upstreams) */
};

/* Fills s from the environment (and configures oci/'s process-wide settings the same way). */
int settings_from_env(struct ml_settings *s, struct ml_err *e);
void settings_free(struct ml_settings *s);

#endif
