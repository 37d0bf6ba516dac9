/* rpc/settings.c - the environment, read in one place. */
#include "rpc/settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/logfile.h"
#include "oci/oci.h"
#include "rpc/sandbox.h"

static char *env_dup(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? strdup(v) : NULL;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end = NULL;
	unsigned long long n = v && *v ? strtoull(v, &end, 10) : 0;
	return v && *v && !*end && n > 0 ? (uint64_t)n : dflt;
}

int settings_from_env(struct ml_settings *s, struct ml_err *e)
{
	memset(s, 0, sizeof(*s));
	s->cache_dir = ml_cache_dir();
	s->state_dir = ml_state_dir();
	s->data_dir = env_dup("MATCHLOCK_DATA_DIR");
	s->kernel = env_dup("MATCHLOCK_KERNEL");
	s->agent = env_dup("MATCHLOCK_GUEST_AGENT");
	s->accel = env_dup("MATCHLOCK_ACCEL");
	s->engine = env_dup("MATCHLOCK_QEMU");
	const char *nb = getenv("MATCHLOCK_NET_BACKEND");
	s->qemu_user_net = nb && !strcmp(nb, "qemu-user");
	s->boot_timeout_s = (int)env_u64("MATCHLOCK_BOOT_TIMEOUT", 60);
	if (s->boot_timeout_s <= 0 || s->boot_timeout_s > 3600)
		s->boot_timeout_s = 60;
	s->ca_file = env_dup("SSL_CERT_FILE");
	s->log_budget = env_u64("MATCHLOCK_LOG_BUDGET_MB", 0) << 20;
	if (!s->log_budget)
		s->log_budget = ML_LOGFILE_BUDGET_DEFAULT;
	if (!s->cache_dir || !s->state_dir || asprintf(&s->volumes_dir, "%s/volumes", s->cache_dir) < 0 ||
	    asprintf(&s->holders_dir, "%s/disks", s->state_dir) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	struct oci_settings os = {
		.home = getenv("HOME"), .docker_config = getenv("DOCKER_CONFIG"),
		.ca_file = getenv("SSL_CERT_FILE"),
		.insecure_registries = getenv("MATCHLOCK_INSECURE_REGISTRIES"),
		.max_rootfs_mb = env_u64("MATCHLOCK_MAX_ROOTFS_MB", 0),
	};
	if (oci_settings_set(&os) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

void settings_free(struct ml_settings *s)
{
	free(s->cache_dir);
	free(s->state_dir);
	free(s->volumes_dir);
	free(s->holders_dir);
	free(s->data_dir);
	free(s->kernel);
	free(s->agent);
	free(s->accel);
	free(s->engine);
	free(s->ca_file);
	memset(s, 0, sizeof(*s));
}
