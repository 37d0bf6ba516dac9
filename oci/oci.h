/* oci/oci.h - the local image store (content-addressed blobs, tags, image configs) and the
 * rootless rootfs builder (OCI layers -> one ext4 file per image, shared read-only by its VMs). */
#ifndef ML_OCI_H
#define ML_OCI_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct oci_store;

/* cache_dir is ~/.cache/matchlock (created 0700 if missing); the store lives in
 * <cache_dir>/images. Safe for several processes at once. */
int oci_store_open(const char *cache_dir, struct oci_store **out, struct ml_err *e);
void oci_store_free(struct oci_store *s);

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

#endif
