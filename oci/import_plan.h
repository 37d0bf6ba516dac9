/* oci/import_plan.h - between import.c (archive members) and import_json.c (what the JSON in
 * them says). Internal to oci/. */
#ifndef ML_OCI_IMPORT_PLAN_H
#define ML_OCI_IMPORT_PLAN_H

#include "oci/internal.h"

/* Reads a member (at most OCI_JSON_MAX bytes) into a malloc'd buffer; when digest is not NULL
 * the member's sha256 must match it. */
struct plan_reader {
	int (*read)(void *ctx, const char *member, const char *digest, char **buf, size_t *len,
		    struct ml_err *e);
	void *ctx;
};

int plan_oci(const struct plan_reader *rd, struct import_plan *p, struct ml_err *e);
int plan_docker(const struct plan_reader *rd, struct import_plan *p, struct ml_err *e);

#endif
