/* oci/reference.c - Docker-style image references:
 *   [domain[:port]/]path[:tag][@sha256:<hex>]
 * The first component is a registry domain only if it contains '.' or ':' or is "localhost"
 * (so "team/tool" is a Docker Hub repository); Docker Hub names with one component live under
 * "library/"; no tag and no digest means ":latest". */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry.h"

#define REF_MAX 1024
#define NAME_MAX_LEN 255

static bool alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Path components: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'. */
static const char *check_path(const char *p, size_t n)
{
	if (n == 0)
		return "empty repository name";
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		size_t len = i - start;
		const char *c = p + start;
		if (len == 0)
			return "empty path component";
		for (size_t j = 0; j < len; j++)
			if (c[j] >= 'A' && c[j] <= 'Z')
				return "repository name must be lowercase";
		if (!alnum_lower(c[0]) || !alnum_lower(c[len - 1]))
			return "path components must start and end with a lowercase letter or digit";
		for (size_t j = 0; j < len; j++) {
			if (!alnum_lower(c[j]) && c[j] != '.' && c[j] != '_' && c[j] != '-')
				return "bad character in repository name";
			if (c[j] == '.' && c[j + 1] == '.')
				return "bad separator in repository name";
			if (c[j] == '_' && c[j + 1] == '_' && j + 2 < len && c[j + 2] == '_')
				return "bad separator in repository name";
		}
		start = i + 1;
	}
	return NULL;
}

static const char *check_port(const char *p, size_t n)
{
	if (n == 0 || n > 5)
		return "registry port must be 1 to 5 digits";
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)p[i]))
			return "registry port must be digits";
	return NULL;
}

static const char *check_domain(const char *d, size_t n)
{
	const char *colon;
	if (n && d[0] == '[') {
		const char *end = memchr(d, ']', n);
		if (!end || end == d + 1)
			return "bad IPv6 registry address";
		for (const char *c = d + 1; c < end; c++)
			if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
				return "bad IPv6 registry address";
		size_t rest = n - (size_t)(end + 1 - d);
		if (rest == 0)
			return NULL;
		if (end[1] != ':')
			return "bad registry address";
		return check_port(end + 2, rest - 1);
	}
	colon = memchr(d, ':', n);
	size_t hn = colon ? (size_t)(colon - d) : n;
	if (hn == 0)
		return "empty registry host";
	for (size_t i = 0; i < hn; i++)
		if (!isalnum((unsigned char)d[i]) && d[i] != '.' && d[i] != '-')
			return "bad character in registry host";
	if (d[0] == '-' || d[0] == '.' || d[hn - 1] == '-' || d[hn - 1] == '.')
		return "bad registry host";
	return colon ? check_port(colon + 1, n - hn - 1) : NULL;
}

static const char *check_tag(const char *t, size_t n)
{
	if (n == 0 || n > 128)
		return "tag must be 1 to 128 characters";
	if (!isalnum((unsigned char)t[0]) && t[0] != '_')
		return "tag must start with a letter, digit or '_'";
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
			return "bad character in tag";
	return NULL;
}

static bool is_domain(const char *c, size_t n)
{
	return memchr(c, '.', n) || memchr(c, ':', n) || (n == 9 && !memcmp(c, "localhost", 9)) ||
	       (n && c[0] == '[');
}

static const char *split(const char *s, struct oci_ref *r)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	if (at) {
		if (strncmp(at + 1, "sha256:", 7) != 0 && strchr(at + 1, ':'))
			return "unsupported digest algorithm (only sha256)";
		if (!digest_valid(at + 1))
			return "digest must be sha256:<64 lowercase hex>";
		if (!(r->digest = strdup(at + 1)))
			return "out of memory";
		n = (size_t)(at - s);
	}
	if (n == 0)
		return "empty repository name";
	const char *slash = memchr(s, '/', n);
	size_t dn = 0;
	if (slash && is_domain(s, (size_t)(slash - s)))
		dn = (size_t)(slash - s);
	const char *rest = s + (dn ? dn + 1 : 0);
	size_t rn = n - (size_t)(rest - s);
	const char *colon = memchr(rest, ':', rn);
	if (colon) {
		const char *why = check_tag(colon + 1, rn - (size_t)(colon + 1 - rest));
		if (why)
			return why;
		if (!(r->tag = strndup(colon + 1, rn - (size_t)(colon + 1 - rest))))
			return "out of memory";
		rn = (size_t)(colon - rest);
	}
	const char *why = dn ? check_domain(s, dn) : NULL;
	if (!why)
		why = check_path(rest, rn);
	if (why)
		return why;
	bool hub = !dn || (dn == 15 && !memcmp(s, "index.docker.io", 15)) ||
		   (dn == 9 && !memcmp(s, "docker.io", 9));
	r->domain = hub ? strdup("docker.io") : strndup(s, dn);
	bool library = hub && !memchr(rest, '/', rn);
	r->path = malloc(rn + 9);
	if (!r->domain || !r->path)
		return "out of memory";
	memcpy(r->path, "library/", library ? 8 : 0);
	memcpy(r->path + (library ? 8 : 0), rest, rn);
	r->path[rn + (library ? 8 : 0)] = '\0';
	if (strlen(r->domain) + 1 + strlen(r->path) > NAME_MAX_LEN)
		return "repository name too long";
	if (!r->tag && !r->digest && !(r->tag = strdup("latest")))
		return "out of memory";
	return NULL;
}

int oci_ref_parse(const char *s, struct oci_ref *out, struct ml_err *e)
{
	memset(out, 0, sizeof(*out));
	const char *why = NULL;
	if (!s || !*s)
		why = "empty";
	else if (strlen(s) > REF_MAX)
		why = "too long";
	else
		why = split(s, out);
	if (!why)
		return 0;
	oci_ref_clear(out);
	int code = strcmp(why, "out of memory") == 0 ? -ENOMEM : -EINVAL;
	return ml_err_set(e, code, "invalid reference \"%.200s\": %s", s ? s : "", why);
}

void oci_ref_clear(struct oci_ref *r)
{
	free(r->domain);
	free(r->path);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

const char *oci_ref_host(const struct oci_ref *r)
{
	return strcmp(r->domain, "docker.io") == 0 ? "registry-1.docker.io" : r->domain;
}

const char *oci_ref_object(const struct oci_ref *r)
{
	return r->digest ? r->digest : r->tag;
}
