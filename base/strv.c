/* base/strv.c - see strv.h. */
#include "base/strv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

int strv_append(char ***v, const char *s)
{
	size_t n = strv_len(*v);
	char *c = strdup(s);
	char **nv = c ? realloc(*v, (n + 2) * sizeof(char *)) : NULL;
	if (!nv) {
		free(c);
		return -ENOMEM;
	}
	nv[n] = c;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

char **strv_copy(char *const *v, bool *oom)
{
	if (!v)
		return NULL;
	char **out = calloc(strv_len(v) + 1, sizeof(char *));
	for (size_t i = 0; out && v[i]; i++)
		if (!(out[i] = strdup(v[i]))) {
			strv_free(out);
			out = NULL;
		}
	if (!out)
		*oom = true;
	return out;
}

int strv_env_set(char ***v, const char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);
	for (size_t i = 0; *v && (*v)[i]; i++) {
		if (strncmp((*v)[i], entry, klen) == 0 && (*v)[i][klen] == '=') {
			char *c = strdup(entry);
			if (!c)
				return -ENOMEM;
			free((*v)[i]);
			(*v)[i] = c;
			return 0;
		}
	}
	return strv_append(v, entry);
}

bool strv_contains(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}
