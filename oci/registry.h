/* oci/registry.h - the registry side of oci/: reference parsing, the pieces of the
 * distribution protocol that read hostile input (WWW-Authenticate, manifests, indexes, the
 * user's docker config), and the HTTP client. Internal to oci/ (and its unit/fuzz tests). */
#ifndef ML_OCI_REGISTRY_H
#define ML_OCI_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci/internal.h"

/* reference.c: Docker-style references. "alpine" -> docker.io / library/alpine : latest. */
struct oci_ref {
	char *domain;   /* "docker.io", "localhost:5000", "[::1]:5000" */
	char *path;     /* "library/alpine" */
	char *tag;      /* NULL only when a digest was given without a tag */
	char *digest;   /* "sha256:<hex>" or NULL */
};
int oci_ref_parse(const char *s, struct oci_ref *out, struct ml_err *e);
void oci_ref_clear(struct oci_ref *r);
/* The host to talk to: docker.io is served by registry-1.docker.io. Static or r->domain. */
const char *oci_ref_host(const struct oci_ref *r);
/* What to ask the registry for: the digest if any, else the tag. */
const char *oci_ref_object(const struct oci_ref *r);

/* regauth.c: a WWW-Authenticate challenge. Unknown parameters are ignored. */
enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };
struct www_auth {
	enum auth_scheme scheme;
	char *realm, *service, *scope;
};
int www_auth_parse(const char *hdr, struct www_auth *out, struct ml_err *e);
void www_auth_clear(struct www_auth *a);

/* The base64 "user:pass" for domain from a docker config.json (`auths`), or *basic = NULL
 * when it has none. Keys may carry a scheme and a path ("https://index.docker.io/v1/"). */
int docker_auth_find(const char *json, size_t len, const char *domain, char **basic,
		     struct ml_err *e);
/* Reads $DOCKER_CONFIG/config.json or ~/.docker/config.json; a missing file is no error. */
int docker_auth_load(const char *domain, char **basic, struct ml_err *e);

/* Plain HTTP is allowed for loopback registries (localhost, 127.0.0.0/8, ::1) and for those in
 * the comma-separated list (host or host:port; a bare host matches every port). */
bool registry_plain_http_ok(const char *domain, const char *insecure_list);

/* manifest.c: manifests and indexes as they come off the wire. */
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

struct mf_desc {
	char digest[72];
	uint64_t size;
};
struct manifest {
	struct mf_desc config;
	struct mf_desc *layers;
	size_t n_layers;
};
/* Whether the document is an index (a manifest list) or an image manifest; content_type is
 * the response's (may be NULL), the body's own mediaType wins when both are there. */
int manifest_is_index(const char *buf, size_t len, const char *content_type, bool *index,
		      struct ml_err *e);
int manifest_parse(const char *buf, size_t len, struct manifest *m, struct ml_err *e);
void manifest_clear(struct manifest *m);
/* The linux/amd64 entry of an index (variant-aware: none, v1, v2, v3 in that order). */
int index_pick(const char *buf, size_t len, char digest[72], struct ml_err *e);

/* http.c: one registry connection (libcurl). The scheme is decided on the first request:
 * HTTPS, or HTTP when the registry may be plain (see registry_plain_http_ok) and the TLS
 * handshake fails or the server answers in plain HTTP. A 401 is answered once per request
 * with the challenge's Bearer token (fetched with the user's Basic credentials if any) or with
 * Basic credentials. */
#include <curl/curl.h>
#include <time.h>

struct reg_conn {
	const struct oci_ref *ref;
	const char *host;       /* what we connect to */
	const char *scheme;     /* NULL until the first request settles it */
	bool plain_ok;
	char *basic;            /* base64 user:pass from the docker config, or NULL */
	char *authz;            /* "Authorization: ..." once a challenge was answered */
	time_t deadline;        /* whole pull; 0 = none */
	const volatile int *cancel; /* non-zero: abort transfers (NULL = never) */
};
struct reg_resp {
	char *body;
	size_t len, max;
	long status;
	char *content_type, *digest, *challenge; /* response headers, NULL if absent */
	bool too_big;
};
int reg_open(struct reg_conn *c, const struct oci_ref *ref, time_t deadline, struct ml_err *e);
void reg_close(struct reg_conn *c);
void reg_resp_clear(struct reg_resp *r);
/* GET /v2/<path>/manifests/<object>, body capped at OCI_JSON_MAX. A non-200 is an error with
 * the registry's meaning ("manifest unknown", "unauthorized: ..."). */
int reg_get_manifest(struct reg_conn *c, const char *object, struct reg_resp *out, struct ml_err *e);
/* Options every transfer shares (URL, TLS, timeouts, Accept, Authorization); *hdrs must be
 * freed with curl_slist_free_all after the transfer. */
int reg_easy_setup(struct reg_conn *c, CURL *h, const char *url, const char *accept,
		   struct curl_slist **hdrs, struct ml_err *e);
char *reg_blob_url(const struct reg_conn *c, const char *digest);
/* Answers a 401 challenge: sets c->authz or fails ("unauthorized: ..."). */
int reg_answer_challenge(struct reg_conn *c, const char *challenge, struct ml_err *e);
/* One line for a failed transfer. */
int reg_curl_error(const struct reg_conn *c, CURLcode rc, const char *detail, struct ml_err *e);
int reg_status_error(const struct reg_conn *c, long status, const char *what, struct ml_err *e);

/* blobs.c: config and layer blobs into blobs/sha256_<hex>.<ext>, up to 4 at once. Each blob is
 * streamed to tmp/blob-<hex>.XXXXXX while hashed, checked against its digest and size, fsynced
 * and renamed; a blob already in the store is reused. An flock on locks/<hex>.lock around
 * download-or-reuse makes concurrent pulls fetch each blob once. */
struct blob_job {
	const char *digest;
	uint64_t size;
	const char *ext;        /* "tar" or "json" */
	unsigned index;         /* for progress: layer number, or ~0u for the config */
	/* filled while running */
	CURL *h;
	struct curl_slist *hdrs;
	struct sha256 *hash;
	char *tmp, *challenge;
	int fd, lockfd, err, state, auth_retries;
	uint64_t got;
	bool too_big;
	struct blobs_run *run;
};
typedef void (*oci_progress_fn)(void *arg, unsigned layer, uint64_t done, uint64_t total);
int blobs_fetch(struct reg_conn *c, struct oci_store *s, struct blob_job *jobs, size_t n,
		oci_progress_fn progress, void *arg, struct ml_err *e);
/* Writes bytes already verified (a manifest) as blobs/sha256_<hex>.<ext>: temp, fsync, rename. */
int blob_write(struct oci_store *s, const char *hex, const char *ext, const void *buf, size_t len,
	       struct ml_err *e);

#endif
