/* oci/settings.c - the image code's process-wide settings (oci.h). Set once by main before any
 * other thread starts; read-only afterwards, so readers need no lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/oci.h"

static struct oci_settings current;

static int dup_field(const char **dst, const char *src)
{
	free((char *)*dst);
	*dst = NULL;
	if (!src || !*src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int oci_settings_set(const struct oci_settings *s)
{
	int r = dup_field(&current.home, s->home);
	if (r == 0)
		r = dup_field(&current.docker_config, s->docker_config);
	if (r == 0)
		r = dup_field(&current.ca_file, s->ca_file);
	if (r == 0)
		r = dup_field(&current.insecure_registries, s->insecure_registries);
	current.max_rootfs_mb = s->max_rootfs_mb;
	return r;
}

const struct oci_settings *oci_settings_get(void) { return &current; }
