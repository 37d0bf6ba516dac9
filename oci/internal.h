/* oci/internal.h - shared between the oci/ files only. */
#ifndef ML_OCI_INTERNAL_H
#define ML_OCI_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "base/err.h"
#include "ext4/ext4.h"
#include "oci/oci.h"

#define OCI_JSON_MAX (4u << 20)          /* manifest, config, index */
#define OCI_MAX_MEMBERS 100000u          /* members of an imported archive */
#define OCI_MAX_LAYERS 256u
#define OCI_EXPAND_MAX (64ULL << 30)     /* hard ceiling on what a rootfs build may decompress */
#define OCI_EXPAND_DEFAULT_MB 10240u     /* default limit: $MATCHLOCK_MAX_ROOTFS_MB overrides */
/* rootfs.c: the decompressed bytes one rootfs build may write (decompression bombs stop here). */
uint64_t expand_limit(void);

struct oci_store {
	char *dir;       /* <cache>/images */
	sqlite3 *db;
};

/* store.c */
char *store_path(const struct oci_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int store_mkdirs(const char *path, struct ml_err *e);

/* digest.c: "sha256:<64 hex>" checks and streaming hashing. */
bool digest_valid(const char *d);
struct sha256;
struct sha256 *sha256_new(void);
void sha256_update(struct sha256 *h, const void *p, size_t n);
/* Writes 64 hex digits + NUL to hex and frees h. */
void sha256_done(struct sha256 *h, char hex[65]);
int sha256_fd(int fd, char hex[65], struct ml_err *e);

/* spool.c: writes all of p (short writes and EINTR retried); 0 or -errno. */
int oci_write_all(int fd, const void *p, size_t n);
/* manifest.c: layer media types we can unpack (OCI and Docker; tar, gzip, zstd). */
bool oci_layer_media_ok(const char *mt);

/* config.c */
int config_parse(const char *json, size_t len, struct oci_config *c, struct ml_err *e);
void config_clear(struct oci_config *c);

/* layer.c: streams one layer blob (tar, gzip or zstd) into img. *budget is the number of
 * decompressed bytes still allowed; counts entries into *entries when not NULL. */
int layer_apply(struct ext4_img *img, int fd, const char *digest, uint64_t *budget,
		struct ml_err *e);
/* Counting pass: bytes (rounded to blocks) and entries a layer would add. */
int layer_measure(int fd, const char *digest, uint64_t *bytes, uint64_t *entries,
		  uint64_t *budget, struct ml_err *e);

/* oci_lookup restricted to one scope ("local", "registry") or any (NULL). */
int store_lookup(struct oci_store *s, const char *ref, const char *scope, struct oci_image **out,
		 struct ml_err *e);

/* catalog.c: one image's rows (images + image_layers) in one transaction. */
struct store_record {
	const char *scope, *tag, *source, *digest;
	uint64_t size;
	const char *config_json;
	size_t config_len;
	const char **layer_digests;
	const uint64_t *layer_sizes;
	size_t n_layers;
};
int store_record(struct oci_store *s, const struct store_record *rec, struct ml_err *e);

/* gc.c: the store-wide lock. Pulls hold it shared while blobs are in the store but not yet
 * tagged; pruning holds it exclusive. Returns an fd (close to unlock), or -EWOULDBLOCK
 * (no message) when nb and it is busy. */
int store_lock(struct oci_store *s, bool exclusive, bool nb, struct ml_err *e);
int store_prune(struct oci_store *s, struct oci_gc_info *info, bool temps, struct ml_err *e);

/* rootfs lookups need the layer list of an image. */
int store_layers(struct oci_store *s, const char *digest, char ***digests, struct ml_err *e);

/* import_json.c: what an archive's JSON says. */
struct import_plan {
	char *config_member;        /* archive member holding the config */
	char *config_digest;        /* expected "sha256:..." or NULL (docker save: by name) */
	size_t n_layers;
	char **layer_member;
	char **layer_digest;        /* expected digests or NULL entries */
	char *manifest_member;      /* OCI: member of the chosen manifest, NULL for docker */
	char *manifest_digest;
};
void plan_clear(struct import_plan *p);

#endif
