/* oci/oci.h - the local image store (content-addressed blobs, tags, image configs) and the
 * rootless rootfs builder (OCI layers -> one ext4 file per image, shared read-only by its VMs). */
#ifndef ML_OCI_H
#define ML_OCI_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct oci_store;

/* Process-wide settings of the image code, given once by main (from the environment: the
 * registry client's conventions SSL_CERT_FILE and DOCKER_CONFIG, and matchlock's own knobs);
 * nothing in oci/ reads the environment itself. Strings are copied. Unset fields: defaults. */
struct oci_settings {
	const char *home;                /* for ~/.docker/config.json */
	const char *docker_config;       /* $DOCKER_CONFIG: directory of config.json */
	const char *ca_file;             /* $SSL_CERT_FILE: extra CAs for HTTPS registries */
	const char *insecure_registries; /* $MATCHLOCK_INSECURE_REGISTRIES: plain-HTTP hosts */
	uint64_t max_rootfs_mb;          /* $MATCHLOCK_MAX_ROOTFS_MB: 0 = default */
};
int oci_settings_set(const struct oci_settings *s);
const struct oci_settings *oci_settings_get(void);

/* cache_dir is ~/.cache/matchlock (created 0700 if missing); the store lives in
 * <cache_dir>/images. Safe for several processes at once. */
int oci_store_open(const char *cache_dir, struct oci_store **out, struct ml_err *e);
void oci_store_free(struct oci_store *s);
/* Whether a store exists under cache_dir, without creating anything (shell completion). */
bool oci_store_exists(const char *cache_dir);

/* The parts of the image config that `run` honours. Arrays are NULL-terminated; a NULL array
 * means "not set" (different from an empty one for Entrypoint). */
struct oci_config {
	char **entrypoint;
	char **cmd;
	char **env;      /* "KEY=VALUE" */
	char *user;      /* NULL or "" = root */
	char *workdir;   /* NULL or "" = unset */
};

struct oci_image {
	char *tag;          /* as stored, e.g. "matchlock/default:latest" */
	char *digest;       /* "sha256:<hex>" of the manifest */
	uint64_t size;      /* bytes of its layer blobs */
	int64_t created;    /* unix seconds when it entered the store */
	struct oci_config config;
};
void oci_image_free(struct oci_image *img);

/* Normalizes a local reference for lookup: adds ":latest" when no tag or digest is given.
 * Returns a malloc'd string or NULL on bad input (error set). */
char *oci_ref_normalize(const char *ref, struct ml_err *e);

struct oci_import_info {
	unsigned layers;
	uint64_t size;  /* bytes of layer blobs */
	char digest[72];
};
/* Imports an image from a tar stream on fd: a `docker save` tarball or an OCI image layout
 * (index.json, oci-layout, blobs/sha256/...). Every blob is verified against its digest and
 * written to a temp file, fsynced and renamed; the tag is set only when all of it is in.
 * A malformed archive is an error with one clear line; the store is left untouched. */
int oci_import(struct oci_store *s, const char *tag, int fd, struct oci_import_info *info,
	       struct ml_err *e);

/* Looks a tag up (normalized as above). -ENOENT with "image not found: <ref>" if absent. */
int oci_lookup(struct oci_store *s, const char *ref, struct oci_image **out, struct ml_err *e);

/* The image's rootfs ext4, built on first use (under a lock, so two VMs starting at once build
 * it once) and reused after. *path is malloc'd. *built says whether this call built it. */
int oci_rootfs(struct oci_store *s, const struct oci_image *img, char **path, bool *built,
	       struct ml_err *e);

/* ---- registry pulls (pull.c) ---- */
struct oci_pull_opts {
	bool force;              /* fetch the manifest again even if the tag is cached */
	const char *alias_tag;   /* also tag the image in scope 'local' (same blobs), or NULL */
	int timeout_s;           /* whole pull; 0 = none */
	/* Per layer (index in the manifest), called often while bytes arrive; may be NULL. */
	void (*progress)(void *arg, unsigned layer, unsigned layers, uint64_t done, uint64_t total);
	void *progress_arg;
	const volatile int *cancel; /* set non-zero from any thread: the pull fails "cancelled" */
};
/* Pulls ref (Docker-style: "alpine", "localhost:5000/x/y:1", "name@sha256:...") from its
 * registry into scope 'registry' under the tag as typed (":latest" added when it has neither
 * tag nor digest). Without force a cached image (local scope first, then registry) is returned
 * without any network traffic. Every manifest and blob is verified; nothing is tagged unless
 * all of it is in. Errors are one line, prefixed "pull <ref>: ". */
int oci_pull(struct oci_store *s, const char *ref, const struct oci_pull_opts *o,
	     struct oci_image **out, struct ml_err *e);
/* Whether ref names something a registry could serve (parses as a Docker reference); the
 * reason in e (may be NULL) when not. */
bool oci_ref_pullable(const char *ref, struct ml_err *e);

/* ---- the catalog (catalog.c, gc.c) ---- */
struct oci_image_row {
	char *tag, *scope, *source;
	uint64_t size;
	int64_t created;
};
/* Local scope first, then registry; newest first in each. */
int oci_list(struct oci_store *s, struct oci_image_row **rows, size_t *n, struct ml_err *e);
void oci_rows_free(struct oci_image_row *rows, size_t n);
/* Removes tag (local scope first, else registry): -ENOENT with `image not found: "<tag>"`.
 * Blobs and rootfs images no longer referenced are pruned (skipped while a pull runs). */
int oci_remove(struct oci_store *s, const char *tag, struct ml_err *e);
struct oci_gc_info {
	unsigned blobs, rootfs, temps;
	uint64_t bytes;
};
/* Removes unreferenced blobs and rootfs images, and temp files of dead pulls/imports. Waits for
 * pulls in progress (they hold the store lock shared). */
int oci_gc(struct oci_store *s, struct oci_gc_info *info, struct ml_err *e);

#endif
