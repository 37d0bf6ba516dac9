/* mitm/secrets_json.c - network.secrets from the JSON-RPC wire:
 * {"NAME": {"value": str, "placeholder": str (optional), "hosts": [str]}}. Each secret gets a
 * fresh placeholder unless the wire gave one (the SDKs never do). The values are copies that
 * mitm_secrets_free wipes; none appears in an error message.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mitm/intercept.h"

static void one_free(struct mitm_secret *s)
{
	free((char *)s->name);
	if (s->value) {
		explicit_bzero((char *)s->value, strlen(s->value));
		free((char *)s->value);
	}
	free((char *)s->placeholder);
	for (size_t i = 0; i < s->n_hosts; i++)
		free(s->hosts[i]);
	free(s->hosts);
}

void mitm_secrets_free(struct mitm_secret *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		one_free(&s[i]);
	free(s);
}

static int bad(struct ml_err *e, const char *name, const char *why)
{
	return ml_err_set(e, -EINVAL, "invalid configuration: network.secrets.%s: %s", name, why);
}

static int one_parse(const char *name, const json_t *j, struct mitm_secret *s, struct ml_err *e)
{
	const json_t *v = json_object_get(j, "value"), *ph = json_object_get(j, "placeholder"),
		     *hosts = json_object_get(j, "hosts");
	char fresh[MITM_PLACEHOLDER_LEN + 1];
	size_t i;
	json_t *h;
	int r;

	if (!json_is_object(j))
		return bad(e, name, "must be an object with value and hosts");
	if (!*name || strchr(name, '='))
		return bad(e, name, "the name must be non-empty and hold no '='");
	if (!json_is_string(v))
		return bad(e, name, "value must be a string");
	if (ph && !json_is_null(ph) && (!json_is_string(ph) || !json_string_length(ph)))
		return bad(e, name, "placeholder must be a non-empty string");
	if (hosts && !json_is_null(hosts) && !json_is_array(hosts))
		return bad(e, name, "hosts must be an array of strings");
	if (!(s->name = strdup(name)) || !(s->value = strndup(json_string_value(v), json_string_length(v))))
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (json_is_string(ph)) {
		s->placeholder = strdup(json_string_value(ph));
	} else {
		if ((r = mitm_placeholder_new(fresh)) < 0)
			return ml_err_set(e, r, "making a secret placeholder: %s", strerror(-r));
		s->placeholder = strdup(fresh);
	}
	if (!s->placeholder)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (json_array_size(hosts) && !(s->hosts = calloc(json_array_size(hosts), sizeof(char *))))
		return ml_err_set(e, -ENOMEM, "out of memory");
	json_array_foreach(hosts, i, h) {
		if (!json_is_string(h))
			return bad(e, name, "hosts must be an array of strings");
		if (!json_string_length(h))
			continue;
		if (!(s->hosts[s->n_hosts] = strdup(json_string_value(h))))
			return ml_err_set(e, -ENOMEM, "out of memory");
		s->n_hosts++;
	}
	return 0;
}

int mitm_secrets_parse(const json_t *obj, struct mitm_secret **out, size_t *n, struct ml_err *e)
{
	struct mitm_secret *v;
	const char *name;
	json_t *j;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!obj || json_is_null(obj) || (json_is_object(obj) && !json_object_size(obj)))
		return 0;
	if (!json_is_object(obj))
		return ml_err_set(e, -EINVAL, "invalid configuration: network.secrets must be an object");
	if (!(v = calloc(json_object_size(obj), sizeof(*v))))
		return ml_err_set(e, -ENOMEM, "out of memory");
	json_object_foreach((json_t *)obj, name, j) {
		int r = one_parse(name, j, &v[k], e);

		k++;
		if (r < 0) {
			mitm_secrets_free(v, k);
			return r;
		}
	}
	*out = v;
	*n = k;
	return 0;
}
