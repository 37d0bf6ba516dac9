/* oci/http.c - talking to a registry over libcurl: the shared transfer options, the scheme
 * decision, the 401 challenge flow and error lines a user can act on. Bodies go to memory
 * only with a cap; everything read from headers is bounded before it is kept. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "oci/registry.h"

#define TOKEN_MAX (1u << 20)
#define HEADER_MAX 4096
#define USER_AGENT "matchlock/0.1 (libcurl)"

static const char ACCEPT_MANIFESTS[] = "Accept: " MT_OCI_INDEX ", " MT_OCI_MANIFEST ", "
				       MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST;

/* Lets a caller (a sandbox being cancelled) stop a transfer from another thread. */
static int xfer_cancel(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return *(const volatile int *)arg != 0;
}

int reg_open(struct reg_conn *c, const struct oci_ref *ref, time_t deadline, struct ml_err *e)
{
	static bool inited;
	memset(c, 0, sizeof(*c));
	if (!inited && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return ml_err_set(e, -EIO, "libcurl initialisation failed");
	inited = true;
	c->ref = ref;
	c->host = oci_ref_host(ref);
	c->deadline = deadline;
	c->plain_ok = registry_plain_http_ok(ref->domain, oci_settings_get()->insecure_registries);
	return docker_auth_load(ref->domain, &c->basic, e);
}

void reg_close(struct reg_conn *c)
{
	free(c->basic);
	free(c->authz);
	memset(c, 0, sizeof(*c));
}

void reg_resp_clear(struct reg_resp *r)
{
	free(r->body);
	free(r->content_type);
	free(r->digest);
	free(r->challenge);
	memset(r, 0, sizeof(*r));
}

static size_t mem_write(char *p, size_t sz, size_t n, void *arg)
{
	struct reg_resp *r = arg;
	size_t len = sz * n;
	if (r->len + len > r->max) {
		r->too_big = true;
		return 0;
	}
	char *b = realloc(r->body, r->len + len + 1);
	if (!b)
		return 0;
	memcpy(b + r->len, p, len);
	r->body = b;
	r->len += len;
	b[r->len] = '\0';
	return len;
}

static void keep_header(char **dst, const char *v, size_t n)
{
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	while (n && *v == ' ')
		v++, n--;
	free(*dst);
	*dst = n <= HEADER_MAX ? strndup(v, n) : NULL;
}

static size_t header_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct reg_resp *r = arg;
	size_t len = sz * n;
	static const struct { const char *name; size_t off; } keep[] = {
		{ "content-type:", offsetof(struct reg_resp, content_type) },
		{ "docker-content-digest:", offsetof(struct reg_resp, digest) },
		{ "www-authenticate:", offsetof(struct reg_resp, challenge) },
	};
	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* a new response (after a redirect): forget the previous one's headers */
		for (size_t i = 0; i < 3; i++) {
			char **d = (char **)((char *)r + keep[i].off);
			free(*d);
			*d = NULL;
		}
		return len;
	}
	for (size_t i = 0; i < 3; i++) {
		size_t kl = strlen(keep[i].name);
		if (len > kl && !strncasecmp(p, keep[i].name, kl))
			keep_header((char **)((char *)r + keep[i].off), p + kl, len - kl);
	}
	return len;
}

int reg_easy_setup(struct reg_conn *c, CURL *h, const char *url, const char *accept,
		   struct curl_slist **hdrs, struct ml_err *e)
{
	struct curl_slist *l = NULL, *t;
	if (accept && !(l = curl_slist_append(l, accept)))
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (c->authz && !(t = curl_slist_append(l, c->authz))) {
		curl_slist_free_all(l);
		return ml_err_set(e, -ENOMEM, "out of memory");
	} else if (c->authz) {
		l = t;
	}
	*hdrs = l;
	const char *ca = oci_settings_get()->ca_file;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* blob redirects go to storage hosts; never downgrade a secure registry to http */
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, c->plain_ok ? "http,https" : "https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
	if (ca && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	if (c->cancel) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cancel);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)c->cancel);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	if (c->deadline) {
		time_t left = c->deadline - time(NULL);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)(left > 1 ? left : 1));
	}
	return 0;
}

char *reg_blob_url(const struct reg_conn *c, const char *digest)
{
	char *u = NULL;
	if (asprintf(&u, "%s://%s/v2/%s/blobs/%s", c->scheme ? c->scheme : "https", c->host,
		     c->ref->path, digest) < 0)
		return NULL;
	return u;
}

int reg_curl_error(const struct reg_conn *c, CURLcode rc, const char *detail, struct ml_err *e)
{
	const char *d = detail && *detail ? detail : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return ml_err_set(e, -EHOSTUNREACH, "could not resolve host %s", c->host);
	case CURLE_COULDNT_CONNECT:
		return ml_err_set(e, -ECONNREFUSED, "could not connect to %s: connection refused (%s)", c->host, d);
	case CURLE_ABORTED_BY_CALLBACK:
		return ml_err_set(e, -ECANCELED, "cancelled");
	case CURLE_OPERATION_TIMEDOUT:
		return ml_err_set(e, -ETIMEDOUT, "timed out talking to %s", c->host);
	case CURLE_PEER_FAILED_VERIFICATION:
		return ml_err_set(e, -EPERM, "TLS certificate of %s is not trusted: %s", c->host, d);
	case CURLE_SSL_CONNECT_ERROR:
		return ml_err_set(e, -EPROTO, "TLS handshake with %s failed: %s", c->host, d);
	case CURLE_PARTIAL_FILE:
		return ml_err_set(e, -EPROTO, "%s closed the connection early (truncated body)", c->host);
	default:
		return ml_err_set(e, -EIO, "%s: %s", c->host, d);
	}
}

int reg_status_error(const struct reg_conn *c, long status, const char *what, struct ml_err *e)
{
	switch (status) {
	case 401:
		return ml_err_set(e, -EACCES, "unauthorized: authentication required (%s)", c->host);
	case 403:
		return ml_err_set(e, -EACCES, "denied: %s refused access to %s", c->host, what);
	case 404:
		return ml_err_set(e, -ENOENT, "not found: %s", what);
	case 429:
		return ml_err_set(e, -EAGAIN, "%s: too many requests, try again later", c->host);
	default:
		return ml_err_set(e, -EIO, "%s answered HTTP %ld for %s", c->host, status, what);
	}
}

/* One GET into memory. Returns the curl code; r->status holds the HTTP status. */
static CURLcode get_mem(struct reg_conn *c, const char *url, const char *accept, const char *auth,
			struct reg_resp *r, char *errbuf, struct ml_err *e)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	if (!h) {
		ml_err_set(e, -ENOMEM, "out of memory");
		return CURLE_OUT_OF_MEMORY;
	}
	char *saved = c->authz;
	if (auth)
		c->authz = (char *)auth;
	int sr = reg_easy_setup(c, h, url, accept, &hdrs, e);
	c->authz = saved;
	CURLcode rc = CURLE_OUT_OF_MEMORY;
	if (sr == 0) {
		errbuf[0] = '\0';
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

static bool token_ok(const char *t)
{
	if (!t || !*t || strlen(t) > 16384)
		return false;
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || *t == 0x7f)
			return false;
	return true;
}

static int fetch_token(struct reg_conn *c, const struct www_auth *a, struct ml_err *e)
{
	CURL *h = curl_easy_init();
	char *svc = h && a->service ? curl_easy_escape(h, a->service, 0) : NULL;
	_cleanup_free_ char *deflt = NULL;
	if (!a->scope && asprintf(&deflt, "repository:%s:pull", c->ref->path) < 0)
		deflt = NULL;
	char *scope = h && (a->scope || deflt) ? curl_easy_escape(h, a->scope ? a->scope : deflt, 0) : NULL;
	_cleanup_free_ char *url = NULL, *basic = NULL;
	int n = asprintf(&url, "%s%s%s%s%s%s", a->realm, strchr(a->realm, '?') ? "&" : "?",
			 svc ? "service=" : "", svc ? svc : "", scope ? (svc ? "&scope=" : "scope=") : "",
			 scope ? scope : "");
	curl_free(svc);
	curl_free(scope);
	curl_easy_cleanup(h);
	if (n < 0 || (c->basic && asprintf(&basic, "Authorization: Basic %s", c->basic) < 0))
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (!strncmp(a->realm, "http://", 7) && !c->plain_ok)
		return ml_err_set(e, -EPERM, "%s: refusing a token service over plain HTTP (%s)", c->host, a->realm);
	struct reg_resp r = { .max = TOKEN_MAX };
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc = get_mem(c, url, NULL, basic, &r, errbuf, e);
	int ret = 0;
	if (rc != CURLE_OK)
		ret = reg_curl_error(c, rc, errbuf, e);
	else if (r.status == 401 || r.status == 403)
		ret = ml_err_set(e, -EACCES, "unauthorized: %s", c->basic ? "the token service rejected the credentials"
									 : "authentication required");
	else if (r.status != 200)
		ret = ml_err_set(e, -EIO, "token service answered HTTP %ld", r.status);
	json_t *j = ret == 0 ? json_loadb(r.body ? r.body : "", r.len, 0, NULL) : NULL;
	const char *tok = json_string_value(json_object_get(j, "token"));
	if (!tok)
		tok = json_string_value(json_object_get(j, "access_token"));
	if (ret == 0 && !token_ok(tok))
		ret = ml_err_set(e, -EPROTO, "token service sent no usable token");
	if (ret == 0) {
		free(c->authz);
		if (asprintf(&c->authz, "Authorization: Bearer %s", tok) < 0) {
			c->authz = NULL;
			ret = ml_err_set(e, -ENOMEM, "out of memory");
		}
	}
	json_decref(j);
	reg_resp_clear(&r);
	return ret;
}

int reg_answer_challenge(struct reg_conn *c, const char *challenge, struct ml_err *e)
{
	if (!challenge)
		return ml_err_set(e, -EACCES, "unauthorized: authentication required (%s sent no challenge)", c->host);
	struct www_auth a;
	int r = www_auth_parse(challenge, &a, e);
	if (r < 0)
		return r;
	if (a.scheme == AUTH_BEARER) {
		r = fetch_token(c, &a, e);
	} else if (!c->basic) {
		r = ml_err_set(e, -EACCES, "unauthorized: authentication required (no credentials for %s in the docker config)",
			       c->ref->domain);
	} else {
		free(c->authz);
		if (asprintf(&c->authz, "Authorization: Basic %s", c->basic) < 0) {
			c->authz = NULL;
			r = ml_err_set(e, -ENOMEM, "out of memory");
		}
	}
	www_auth_clear(&a);
	return r;
}

/* The TLS handshake failed or the peer is not speaking TLS: a plain-HTTP registry. */
static bool tls_refused(CURLcode rc)
{
	return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
	       rc == CURLE_WEIRD_SERVER_REPLY;
}

static CURLcode get_manifest_once(struct reg_conn *c, const char *object, struct reg_resp *out,
				  char *errbuf, struct ml_err *e)
{
	_cleanup_free_ char *url = NULL;
	reg_resp_clear(out);
	out->max = OCI_JSON_MAX;
	if (asprintf(&url, "%s://%s/v2/%s/manifests/%s", c->scheme, c->host, c->ref->path, object) < 0) {
		ml_err_set(e, -ENOMEM, "out of memory");
		return CURLE_OUT_OF_MEMORY;
	}
	return get_mem(c, url, ACCEPT_MANIFESTS, NULL, out, errbuf, e);
}

int reg_get_manifest(struct reg_conn *c, const char *object, struct reg_resp *out, struct ml_err *e)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	bool probing = !c->scheme;
	if (probing)
		c->scheme = "https";
	CURLcode rc = get_manifest_once(c, object, out, errbuf, e);
	if (probing && c->plain_ok && tls_refused(rc)) {
		c->scheme = "http";
		rc = get_manifest_once(c, object, out, errbuf, e);
	}
	if (rc == CURLE_OK && out->status == 401) {
		int r = reg_answer_challenge(c, out->challenge, e);
		if (r < 0)
			return r;
		rc = get_manifest_once(c, object, out, errbuf, e);
		if (rc == CURLE_OK && out->status == 401)
			return ml_err_set(e, -EACCES, "unauthorized: %s rejected the credentials", c->host);
	}
	if (out->too_big)
		return ml_err_set(e, -EFBIG, "manifest larger than 4 MiB: refused");
	/* the likely cause is a plain-HTTP registry: say how to allow it, not just what TLS saw */
	if (probing && !c->plain_ok && tls_refused(rc))
		return ml_err_set(e, -EPROTO, "HTTPS to %s failed (%s); if it is a plain-HTTP registry, "
				  "list it in MATCHLOCK_INSECURE_REGISTRIES", c->host,
				  errbuf[0] ? errbuf : curl_easy_strerror(rc));
	if (rc != CURLE_OK)
		return reg_curl_error(c, rc, errbuf, e);
	if (out->status == 404)
		return ml_err_set(e, -ENOENT, "manifest unknown: not found: %s/%s%s%s", c->ref->domain, c->ref->path,
				  strchr(object, ':') ? "@" : ":", object);
	if (out->status != 200)
		return reg_status_error(c, out->status, object, e);
	return 0;
}
