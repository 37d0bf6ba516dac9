/* oci/config.c - the parts of an image config JSON that `run` honours. The JSON comes from an
 * archive or a registry: every field is type-checked, anything unexpected is an error. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "oci/internal.h"

static int str_array(json_t *v, const char *key, char ***out, struct ml_err *e)
{
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return ml_err_set(e, -EINVAL, "image config: %s is not an array", key);
	size_t n = json_array_size(v);
	if (n > 65536)
		return ml_err_set(e, -EINVAL, "image config: %s too long", key);
	char **a = calloc(n + 1, sizeof(*a));
	if (!a)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(v, i));
		if (!s || !(a[i] = strdup(s))) {
			strv_free(a);
			return s ? ml_err_set(e, -ENOMEM, "out of memory")
				 : ml_err_set(e, -EINVAL, "image config: %s[%zu] is not a string", key, i);
		}
	}
	*out = a;
	return 0;
}

static int opt_string(json_t *v, const char *key, char **out, struct ml_err *e)
{
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return ml_err_set(e, -EINVAL, "image config: %s is not a string", key);
	*out = strdup(json_string_value(v));
	return *out ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
}

int config_parse(const char *json, size_t len, struct oci_config *c, struct ml_err *e)
{
	memset(c, 0, sizeof(*c));
	if (len > OCI_JSON_MAX)
		return ml_err_set(e, -EFBIG, "image config: larger than 4 MiB");
	json_error_t je;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return ml_err_set(e, -EINVAL, "image config: %s", je.text);
	int r = 0;
	json_t *cfg = json_object_get(root, "config");
	if (!json_is_object(root))
		r = ml_err_set(e, -EINVAL, "image config: not a JSON object");
	else if (cfg && !json_is_null(cfg) && !json_is_object(cfg))
		r = ml_err_set(e, -EINVAL, "image config: \"config\" is not an object");
	else if (cfg && json_is_object(cfg)) {
		r = str_array(json_object_get(cfg, "Entrypoint"), "Entrypoint", &c->entrypoint, e);
		if (r == 0)
			r = str_array(json_object_get(cfg, "Cmd"), "Cmd", &c->cmd, e);
		if (r == 0)
			r = str_array(json_object_get(cfg, "Env"), "Env", &c->env, e);
		if (r == 0)
			r = opt_string(json_object_get(cfg, "User"), "User", &c->user, e);
		if (r == 0)
			r = opt_string(json_object_get(cfg, "WorkingDir"), "WorkingDir", &c->workdir, e);
	}
	json_decref(root);
	if (r < 0)
		config_clear(c);
	return r;
}

void config_clear(struct oci_config *c)
{
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	strv_free(c->env);
	free(c->user);
	free(c->workdir);
	memset(c, 0, sizeof(*c));
}
