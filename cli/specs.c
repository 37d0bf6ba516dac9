#include "cli/specs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/cleanup.h"

/* One KEY=VALUE or KEY spec -> "KEY=VALUE" appended to out. */
static int env_one(const char *spec, struct strv *out, struct ml_err *e)
{
	_cleanup_free_ char *copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	char *eq = strchr(copy, '=');
	if (eq)
		*eq = '\0';
	char *key = ml_trim(copy);
	if (!*key)
		return ml_err_set(e, -EINVAL, "environment variable name cannot be empty");
	const char *val = eq ? eq + 1 : getenv(key);
	if (!val)
		return ml_err_set(e, -EINVAL, "environment variable is not set $%s", key);
	_cleanup_free_ char *kv = NULL;
	if (asprintf(&kv, "%s=%s", key, val) < 0)
		return -ENOMEM;
	char *const one[] = { kv, NULL };
	specs_env_merge(out, one);
	return 0;
}

static int env_file(const char *path, struct strv *out, struct ml_err *e)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return ml_err_set(e, -errno, "open env file %s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, r = 0;
	while (r == 0 && getline(&line, &cap, f) >= 0) {
		lineno++;
		char *t = ml_trim(line);
		if (!*t || *t == '#')
			continue;
		r = env_one(t, out, e);
		if (r < 0)
			ml_err_wrap(e, "parse env file line %s:%d", path, lineno);
	}
	free(line);
	return r;
}

int specs_env(const struct strv *files, const struct strv *flags, struct strv *out, struct ml_err *e)
{
	for (size_t i = 0; i < files->n; i++) {
		int r = env_file(files->v[i], out, e);
		if (r < 0)
			return ml_err_wrap(e, "invalid environment variable");
	}
	for (size_t i = 0; i < flags->n; i++) {
		int r = env_one(flags->v[i], out, e);
		if (r < 0)
			return ml_err_wrap(e, "invalid environment variable");
	}
	return 0;
}

void specs_env_merge(struct strv *base, char *const *over)
{
	for (; over && *over; over++) {
		const char *eq = strchr(*over, '=');
		size_t klen = eq ? (size_t)(eq - *over) : strlen(*over);
		size_t i;
		for (i = 0; i < base->n; i++)
			if (!strncmp(base->v[i], *over, klen) && base->v[i][klen] == '=')
				break;
		if (i == base->n) {
			strv_add(base, *over);
			continue;
		}
		char *dup = strdup(*over);
		if (!dup)
			abort();
		free(base->v[i]);
		base->v[i] = dup;
	}
}

int specs_add_host(const char *spec, char **line, struct ml_err *e)
{
	const char *colon = strchr(spec, ':');
	if (!colon)
		return ml_err_set(e, -EINVAL, "invalid add-host mapping: invalid add-host format: \"%s\" (expected host:ip) in \"%s\"", spec, spec);
	_cleanup_free_ char *host = strndup(spec, (size_t)(colon - spec));
	const char *ip = colon + 1;
	if (!host)
		return -ENOMEM;
	if (!*host || strpbrk(host, " \t\r\n:"))
		return ml_err_set(e, -EINVAL, "invalid add-host mapping: invalid add-host hostname: \"%s\" in \"%s\"", host, spec);
	unsigned char addr[16];
	char norm[INET6_ADDRSTRLEN];
	if (inet_pton(AF_INET, ip, addr) == 1)
		inet_ntop(AF_INET, addr, norm, sizeof(norm));
	else if (inet_pton(AF_INET6, ip, addr) == 1)
		inet_ntop(AF_INET6, addr, norm, sizeof(norm));
	else
		return ml_err_set(e, -EINVAL, "invalid add-host mapping: invalid add-host ip: \"%s\" in \"%s\"", ip, spec);
	return asprintf(line, "%s %s", norm, host) < 0 ? -ENOMEM : 0;
}

static int parse_port(const char *s, const char *spec, int *out, struct ml_err *e)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno)
		return ml_err_set(e, -EINVAL, "invalid port-forward specification: invalid port \"%s\": in \"%s\"", s, spec);
	if (v < 1 || v > 65535)
		return ml_err_set(e, -EINVAL, "invalid port-forward specification: invalid port %ld: must be in range 1-65535", v);
	*out = (int)v;
	return 0;
}

int specs_publish(const char *spec, int *local, int *remote, struct ml_err *e)
{
	const char *colon = strchr(spec, ':');
	if (!colon) {
		int r = parse_port(spec, spec, remote, e);
		*local = *remote;
		return r;
	}
	if (strchr(colon + 1, ':'))
		return ml_err_set(e, -EINVAL, "invalid port-forward specification: invalid port-forward spec format: \"%s\"", spec);
	_cleanup_free_ char *l = strndup(spec, (size_t)(colon - spec));
	if (!l)
		return -ENOMEM;
	int r = parse_port(l, spec, local, e);
	return r < 0 ? r : parse_port(colon + 1, spec, remote, e);
}

int specs_dns_server(const char *s, struct ml_err *e)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return ml_err_set(e, -EINVAL, "invalid DNS server \"%s\": must be an IPv4 address", s);
	return 0;
}

static int secret_fail(const char *spec, struct ml_err *e, const char *why)
{
	return ml_err_set(e, -EINVAL, "invalid secret \"%s\": %s", spec, why);
}

int specs_secret(const char *spec, struct specs_secret *out, struct ml_err *e)
{
	const char *at = strrchr(spec, '@'), *eq;
	char why[256];

	memset(out, 0, sizeof(*out));
	if (!at)
		return secret_fail(spec, e, "missing @hosts (format: NAME=VALUE@host1,host2 or NAME@host1,host2)");
	for (const char *h = at + 1; *h;) {
		size_t n = strcspn(h, ",");
		char *host = ml_trim_dup(h, n);

		if (host && *host)
			strv_add(&out->hosts, host);
		free(host);
		h += n + (h[n] == ',');
	}
	if (!out->hosts.n)
		return secret_fail(spec, e, "no hosts specified after @");
	eq = memchr(spec, '=', (size_t)(at - spec));
	out->name = ml_trim_dup(spec, (size_t)((eq ? eq : at) - spec));
	if (!out->name)
		return -ENOMEM;
	if (!*out->name)
		return secret_fail(spec, e, "secret name cannot be empty");
	if (eq) {
		out->value = strndup(eq + 1, (size_t)(at - eq - 1));
	} else if (getenv(out->name)) {
		out->value = strdup(getenv(out->name));
	} else {
		snprintf(why, sizeof(why), "environment variable $%s is not set (hint: use 'sudo -E' to preserve "
			 "env vars, or pass inline: NAME=VALUE@hosts)", out->name);
		return secret_fail(spec, e, why);
	}
	return out->value ? 0 : -ENOMEM;
}

void specs_secret_free(struct specs_secret *s)
{
	free(s->name);
	if (s->value)
		explicit_bzero(s->value, strlen(s->value));
	free(s->value);
	strv_clear(&s->hosts);
	memset(s, 0, sizeof(*s));
}

void specs_disks_free(struct disk_spec *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++)
		disk_spec_clear(&d[i]);
	free(d);
}

int specs_disks(const struct strv *specs, const char *vols, const char *workspace,
		struct disk_spec **out, size_t *n, struct ml_err *e)
{
	*out = NULL;
	*n = 0;
	if (!specs->n)
		return 0;
	struct disk_spec *d = calloc(specs->n, sizeof(*d));
	if (!d) {
		free(d);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	int r = 0;
	size_t got = 0;
	for (; got < specs->n && r == 0; got++)
		r = disk_spec_parse(specs->v[got], vols, workspace, &d[got], e);
	if (r == 0)
		r = disk_specs_check_set(d, got, e);
	if (r < 0) {
		specs_disks_free(d, got);
		return r;
	}
	*out = d;
	*n = got;
	return 0;
}

int specs_volumes(const char *workspace, const struct strv *volumes, const char *owner,
		  struct vfs_config *out, struct ml_err *e)
{
	*out = (struct vfs_config){ 0 };
	if (volumes->n && (!workspace || !*workspace))
		return ml_err_set(e, -EINVAL, "--workspace is required when using --volume");
	if (!volumes->n && (!workspace || !*workspace))
		return 0;
	if (!(out->workspace = strdup(workspace)) || (owner && *owner && !(out->owner = strdup(owner))))
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < volumes->n; i++) {
		struct vfs_mount_cfg m;
		int r = vfs_volume_parse(volumes->v[i], workspace, &m, e);
		if (r == 0 && (r = vfs_config_add_mount(out, &m)) < 0)
			ml_err_set(e, r, "out of memory");
		vfs_mount_cfg_free(&m);
		if (r < 0) {
			vfs_config_free(out);
			return r;
		}
	}
	int r = vfs_config_validate(out, e);
	if (r < 0)
		vfs_config_free(out);
	return r;
}
