/* oci/import_spool.h - archive members spooled to a private temp dir, hashed as they arrive.
 * Internal to oci/. */
#ifndef ML_OCI_IMPORT_SPOOL_H
#define ML_OCI_IMPORT_SPOOL_H

#include "oci/internal.h"

struct member {
	char *name;      /* normalized member name ("./" and "/" prefixes dropped) */
	char *file;      /* spool file, NULL for a link */
	char *link;      /* symlink/hard link member: the member it names */
	char hex[65];
	uint64_t size;
};

struct spool {
	char *dir;
	struct member **m;
	size_t n, cap;
	unsigned seq;
};

int spool_open(struct oci_store *s, struct spool *sp, struct ml_err *e);
/* Removes the temp dir and whatever is still in it. */
void spool_close(struct spool *sp);
int spool_read_archive(struct spool *sp, int fd, struct ml_err *e);
/* The last member with that name, links followed once; NULL if absent. */
const struct member *spool_find(struct spool *sp, const char *name);
int spool_slurp(const struct member *m, char **buf, size_t *len, struct ml_err *e);
/* Moves m into blobs/sha256_<hex>.<kind> (fsynced first); a blob already there is kept. */
int spool_commit(struct oci_store *s, struct spool *sp, const struct member *m, const char *kind,
		 struct ml_err *e);
/* docker save has no manifest: write an OCI one for the config and layers as a new member. */
int spool_docker_manifest(struct spool *sp, const struct member *config,
			  const struct member **layers, size_t n, const struct member **out,
			  struct ml_err *e);

#endif
