/* oci/regauth.c - deciding how to talk to a registry: its WWW-Authenticate challenge, the
 * user's credentials from docker's config.json, and whether plain HTTP is acceptable. The
 * challenge comes from the network and the config from a file anyone may have edited: both are
 * parsed with explicit bounds and nothing from them reaches a header unchecked. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/b64.h"
#include "base/cleanup.h"
#include "oci/registry.h"

#define CHALLENGE_MAX 4096
#define DOCKER_CONFIG_MAX (1u << 20)

void www_auth_clear(struct www_auth *a)
{
	free(a->realm);
	free(a->service);
	free(a->scope);
	memset(a, 0, sizeof(*a));
}

/* One `key=value` or `key="quoted \" value"`; *p advances past it and a following comma. */
static int auth_param(const char **p, char *key, size_t kcap, char *val, size_t vcap)
{
	const char *s = *p;
	size_t k = 0, v = 0;
	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (!*s)
		return 0;
	while (*s && *s != '=' && *s != ',' && *s != ' ') {
		if (k + 1 >= kcap)
			return -1;
		key[k++] = (char)tolower((unsigned char)*s++);
	}
	key[k] = '\0';
	while (*s == ' ')
		s++;
	if (*s != '=' || k == 0)
		return -1;
	s++;
	while (*s == ' ')
		s++;
	if (*s == '"') {
		for (s++; *s && *s != '"'; s++) {
			if (*s == '\\' && s[1])
				s++;
			if (v + 1 >= vcap)
				return -1;
			val[v++] = *s;
		}
		if (*s != '"')
			return -1;
		s++;
	} else {
		while (*s && *s != ',' && *s != ' ') {
			if (v + 1 >= vcap)
				return -1;
			val[v++] = *s++;
		}
	}
	val[v] = '\0';
	*p = s;
	return 1;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int www_auth_parse(const char *hdr, struct www_auth *out, struct ml_err *e)
{
	memset(out, 0, sizeof(*out));
	if (!hdr || strlen(hdr) > CHALLENGE_MAX)
		return ml_err_set(e, -EPROTO, "registry sent a bad WWW-Authenticate challenge");
	while (*hdr == ' ')
		hdr++;
	size_t sl = strcspn(hdr, " ");
	if (sl == 6 && strncasecmp(hdr, "Bearer", 6) == 0)
		out->scheme = AUTH_BEARER;
	else if (sl == 5 && strncasecmp(hdr, "Basic", 5) == 0)
		out->scheme = AUTH_BASIC;
	else
		return ml_err_set(e, -EPROTO, "registry asks for an unsupported authentication scheme \"%.*s\"",
				  (int)(sl > 32 ? 32 : sl), hdr);
	const char *p = hdr + sl;
	char key[32], val[CHALLENGE_MAX];
	int rc;
	while ((rc = auth_param(&p, key, sizeof(key), val, sizeof(val))) > 0) {
		char **dst = !strcmp(key, "realm") ? &out->realm : !strcmp(key, "service") ? &out->service
			   : !strcmp(key, "scope") ? &out->scope : NULL;
		if (!dst)
			continue;
		if (!printable(val)) {
			rc = -1;
			break;
		}
		free(*dst);
		if (!(*dst = strdup(val))) {
			www_auth_clear(out);
			return ml_err_set(e, -ENOMEM, "out of memory");
		}
	}
	if (rc < 0 || (out->scheme == AUTH_BEARER && (!out->realm || strncmp(out->realm, "http", 4) != 0))) {
		www_auth_clear(out);
		return ml_err_set(e, -EPROTO, "registry sent a bad WWW-Authenticate challenge");
	}
	return 0;
}

static bool base64_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 4096)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/' && s[i] != '=')
			return false;
	return true;
}

/* "https://index.docker.io/v1/" -> "index.docker.io"; Hub's aliases all become docker.io. */
static char *auth_key_host(const char *key)
{
	const char *s = strstr(key, "://");
	s = s ? s + 3 : key;
	char *h = strndup(s, strcspn(s, "/"));
	if (h && (!strcmp(h, "index.docker.io") || !strcmp(h, "registry-1.docker.io") ||
		  !strcmp(h, "registry.hub.docker.com"))) {
		free(h);
		h = strdup("docker.io");
	}
	return h;
}

static int entry_basic(json_t *v, char **basic, struct ml_err *e)
{
	const char *auth = json_string_value(json_object_get(v, "auth"));
	const char *user = json_string_value(json_object_get(v, "username"));
	const char *pass = json_string_value(json_object_get(v, "password"));
	if (auth && *auth) {
		if (!base64_ok(auth))
			return ml_err_set(e, -EINVAL, "docker config: \"auth\" is not base64");
		*basic = strdup(auth);
	} else if (user && pass) {
		_cleanup_free_ char *up = NULL;
		if (asprintf(&up, "%s:%s", user, pass) < 0)
			return ml_err_set(e, -ENOMEM, "out of memory");
		*basic = ml_b64_encode(up, strlen(up));
	} else {
		return 0;
	}
	return *basic ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
}

int docker_auth_find(const char *json, size_t len, const char *domain, char **basic,
		     struct ml_err *e)
{
	*basic = NULL;
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	if (!root)
		return ml_err_set(e, -EINVAL, "docker config: %s", je.text);
	json_t *auths = json_object_get(root, "auths"), *v;
	const char *key;
	int r = 0;
	if (json_is_object(auths)) {
		json_object_foreach(auths, key, v) {
			_cleanup_free_ char *h = auth_key_host(key);
			if (!h) {
				r = ml_err_set(e, -ENOMEM, "out of memory");
				break;
			}
			if (strcmp(h, domain) != 0 || !json_is_object(v))
				continue;
			free(*basic);
			*basic = NULL;
			if ((r = entry_basic(v, basic, e)) < 0 || *basic)
				break;
		}
	}
	json_decref(root);
	if (r < 0) {
		free(*basic);
		*basic = NULL;
	}
	return r;
}

int docker_auth_load(const char *domain, char **basic, struct ml_err *e)
{
	*basic = NULL;
	_cleanup_free_ char *path = NULL;
	const char *dir = oci_settings_get()->docker_config, *home = oci_settings_get()->home;
	int n = dir && *dir ? asprintf(&path, "%s/config.json", dir)
		: home && *home ? asprintf(&path, "%s/.docker/config.json", home) : 0;
	if (n < 0) {
		path = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (!path)
		return 0;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (st.st_size > DOCKER_CONFIG_MAX)
		return ml_err_set(e, -EFBIG, "%s: larger than 1 MiB", path);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return ml_err_set(e, -ENOMEM, "out of memory");
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int r = docker_auth_find(buf, got, domain, basic, e);
	return r < 0 ? ml_err_wrap(e, "%s", path) : 0;
}

/* host part of "host", "host:port", "[v6]" or "[v6]:port"; port NULL if none. */
static void split_host(const char *d, char *host, size_t cap, const char **port)
{
	const char *end;
	*port = NULL;
	if (d[0] == '[' && (end = strchr(d, ']'))) {
		snprintf(host, cap, "%.*s", (int)(end - d - 1), d + 1);
		*port = end[1] == ':' ? end + 2 : NULL;
		return;
	}
	const char *c = strchr(d, ':');
	snprintf(host, cap, "%.*s", c ? (int)(c - d) : (int)strlen(d), d);
	*port = c ? c + 1 : NULL;
}

static bool loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

bool registry_plain_http_ok(const char *domain, const char *insecure_list)
{
	char host[256], eh[256];
	const char *port, *eport;
	split_host(domain, host, sizeof(host), &port);
	if (loopback(host))
		return true;
	if (!insecure_list)
		return false;
	_cleanup_free_ char *list = strdup(insecure_list);
	char *save = NULL;
	for (char *it = list ? strtok_r(list, ",", &save) : NULL; it; it = strtok_r(NULL, ",", &save)) {
		while (*it == ' ')
			it++;
		it[strcspn(it, " ")] = '\0';
		if (!*it)
			continue;
		split_host(it, eh, sizeof(eh), &eport);
		if (strcasecmp(eh, host) == 0 && (!eport || (port && strcmp(eport, port) == 0)))
			return true;
	}
	return false;
}
