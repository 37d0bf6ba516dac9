/* oci/import.c - `image import`: a docker-save or OCI-layout tar from a pipe. The stream cannot
 * seek and the JSON that explains it may come last, so every file member is spooled (hashed on
 * the way) into a private temp dir; then the plan is read, every blob checked against its
 * digest, blobs renamed into the store and the tag set in one transaction. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/import_plan.h"
#include "oci/import_spool.h"

static int read_json_member(void *ctx, const char *name, const char *digest, char **buf,
			    size_t *len, struct ml_err *e)
{
	struct spool *sp = ctx;
	const struct member *m = spool_find(sp, name);
	if (!m)
		return ml_err_set(e, -EINVAL, "invalid image archive: %s: missing", name);
	if (digest && strcmp(digest + 7, m->hex) != 0)
		return ml_err_set(e, -EINVAL, "invalid image archive: blob %.19s..: digest mismatch", digest);
	if (m->size > OCI_JSON_MAX)
		return ml_err_set(e, -EFBIG, "invalid image archive: %s: larger than 4 MiB", name);
	return spool_slurp(m, buf, len, e);
}

/* A member named after a digest ("blobs/sha256/<hex>", "<hex>.json") must have that digest. */
static int check_named_digest(const struct member *m, struct ml_err *e)
{
	const char *base = strrchr(m->name, '/');
	base = base ? base + 1 : m->name;
	size_t n = strlen(base);
	bool blob = strncmp(m->name, "blobs/sha256/", 13) == 0 && n == 64;
	bool json = n == 69 && strcmp(base + 64, ".json") == 0;
	if ((blob || json) && strncmp(base, m->hex, 64) != 0)
		return ml_err_set(e, -EINVAL, "invalid image archive: blob sha256:%.12s..: digest mismatch", base);
	return 0;
}

/* Finds the member for a blob and checks its digest; *hex gets the digest it really has. */
static int plan_blob(struct spool *sp, const char *member, const char *want, const struct member **out,
		     struct ml_err *e)
{
	const struct member *m = spool_find(sp, member);
	if (!m)
		return ml_err_set(e, -EINVAL, "invalid image archive: %s: missing", member);
	if (want && strcmp(want + 7, m->hex) != 0)
		return ml_err_set(e, -EINVAL, "invalid image archive: blob %.19s..: digest mismatch", want);
	*out = m;
	return check_named_digest(m, e);
}

struct resolved {
	const struct member *config, *manifest;
	const struct member **layers;
	size_t n_layers;
	uint64_t size;
	char manifest_hex[65];
	char *config_json;
	size_t config_len;
};

static int resolve(struct spool *sp, const struct import_plan *p, struct resolved *rv,
		   struct ml_err *e)
{
	int r = plan_blob(sp, p->config_member, p->config_digest, &rv->config, e);
	if (r == 0 && p->manifest_member)
		r = plan_blob(sp, p->manifest_member, p->manifest_digest, &rv->manifest, e);
	rv->layers = calloc(p->n_layers, sizeof(*rv->layers));
	if (r == 0 && !rv->layers)
		r = ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < p->n_layers; i++) {
		r = plan_blob(sp, p->layer_member[i], p->layer_digest[i], &rv->layers[i], e);
		if (r == 0)
			rv->size += rv->layers[i]->size;
	}
	rv->n_layers = p->n_layers;
	if (r == 0 && rv->config->size > OCI_JSON_MAX)
		r = ml_err_set(e, -EFBIG, "invalid image archive: config larger than 4 MiB");
	if (r == 0)
		r = spool_slurp(rv->config, &rv->config_json, &rv->config_len, e);
	struct oci_config c;
	if (r == 0 && (r = config_parse(rv->config_json, rv->config_len, &c, e)) == 0)
		config_clear(&c);
	else if (r < 0 && strncmp(e->msg, "invalid image archive", 21) != 0)
		ml_err_wrap(e, "invalid image archive");
	if (r == 0 && !rv->manifest)
		r = spool_docker_manifest(sp, rv->config, rv->layers, rv->n_layers, &rv->manifest, e);
	if (r == 0)
		memcpy(rv->manifest_hex, rv->manifest->hex, 65);
	return r;
}

static int commit_blobs(struct oci_store *s, struct spool *sp, const struct resolved *rv,
			struct ml_err *e)
{
	int r = spool_commit(s, sp, rv->config, "json", e);
	if (r == 0)
		r = spool_commit(s, sp, rv->manifest, "json", e);
	for (size_t i = 0; r == 0 && i < rv->n_layers; i++)
		r = spool_commit(s, sp, rv->layers[i], "tar", e);
	_cleanup_free_ char *dir = store_path(s, "blobs");
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (r == 0 && dfd >= 0)
		fsync(dfd);
	return r;
}

static int set_tag(struct oci_store *s, const char *tag, const struct resolved *rv,
		   struct ml_err *e)
{
	_cleanup_free_ char *rootfs = store_path(s, "rootfs/%s.ext4", rv->manifest_hex);
	char now[32], digest[72];
	time_t t = time(NULL);
	struct tm tm;
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	snprintf(digest, sizeof(digest), "sha256:%s", rv->manifest_hex);
	sqlite3_stmt *img = NULL, *del = NULL, *lay = NULL;
	int ok = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	ok = ok && sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO images (scope, tag, digest, size,"
			" created_at, source, rootfs_path, oci_json, updated_at) VALUES ('local', ?, ?, ?,"
			" ?, 'import', ?, ?, ?)", -1, &img, NULL) == SQLITE_OK;
	ok = ok && sqlite3_prepare_v2(s->db, "DELETE FROM image_layers WHERE scope = 'local' AND tag = ?",
				      -1, &del, NULL) == SQLITE_OK;
	ok = ok && sqlite3_prepare_v2(s->db, "INSERT INTO image_layers (scope, tag, ordinal, digest,"
			" fs_type, size) VALUES ('local', ?, ?, ?, 'tar', ?)", -1, &lay, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_text(img, 1, tag, -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 2, digest, -1, SQLITE_STATIC);
		sqlite3_bind_int64(img, 3, (sqlite3_int64)rv->size);
		sqlite3_bind_text(img, 4, now, -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 5, rootfs ? rootfs : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 6, rv->config_json, (int)rv->config_len, SQLITE_STATIC);
		sqlite3_bind_text(img, 7, now, -1, SQLITE_STATIC);
		ok = sqlite3_step(img) == SQLITE_DONE;
		sqlite3_bind_text(del, 1, tag, -1, SQLITE_STATIC);
		ok = ok && sqlite3_step(del) == SQLITE_DONE;
	}
	for (size_t i = 0; ok && i < rv->n_layers; i++) {
		char ld[72];
		snprintf(ld, sizeof(ld), "sha256:%s", rv->layers[i]->hex);
		sqlite3_reset(lay);
		sqlite3_bind_text(lay, 1, tag, -1, SQLITE_STATIC);
		sqlite3_bind_int64(lay, 2, (sqlite3_int64)i);
		sqlite3_bind_text(lay, 3, ld, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(lay, 4, (sqlite3_int64)rv->layers[i]->size);
		ok = sqlite3_step(lay) == SQLITE_DONE;
	}
	ok = ok && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	int r = ok ? 0 : ml_err_set(e, -EIO, "image store: set tag %s: %s", tag, sqlite3_errmsg(s->db));
	if (!ok)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(img);
	sqlite3_finalize(del);
	sqlite3_finalize(lay);
	return r;
}

static int import_spooled(struct oci_store *s, const char *tag, struct spool *sp,
			  struct oci_import_info *info, struct ml_err *e)
{
	struct import_plan plan = {0};
	struct plan_reader rd = { read_json_member, sp };
	int r;
	if (spool_find(sp, "index.json"))
		r = plan_oci(&rd, &plan, e);
	else if (spool_find(sp, "manifest.json"))
		r = plan_docker(&rd, &plan, e);
	else
		r = ml_err_set(e, -EINVAL, "invalid image archive: no manifest.json or index.json");
	struct resolved rv = {0};
	if (r == 0)
		r = resolve(sp, &plan, &rv, e);
	/* shared store lock: gc must not collect the blobs before the tag names them */
	int lk = r == 0 ? store_lock(s, false, false, e) : -1;
	if (r == 0 && lk < 0)
		r = lk;
	if (r == 0)
		r = commit_blobs(s, sp, &rv, e);
	if (r == 0)
		r = set_tag(s, tag, &rv, e);
	if (lk >= 0)
		close(lk);
	if (r == 0 && info) {
		info->layers = (unsigned)rv.n_layers;
		info->size = rv.size;
		snprintf(info->digest, sizeof(info->digest), "sha256:%s", rv.manifest_hex);
	}
	free(rv.layers);
	free(rv.config_json);
	plan_clear(&plan);
	return r;
}

int oci_import(struct oci_store *s, const char *tag, int fd, struct oci_import_info *info,
	       struct ml_err *e)
{
	struct ml_err local = {0};
	if (!e)
		e = &local;
	_cleanup_free_ char *norm = oci_ref_normalize(tag, e);
	if (!norm)
		return e->code;
	if (strchr(norm, '@'))
		return ml_err_set(e, -EINVAL, "import: \"%s\": give a tag, not a digest", tag);
	struct spool sp;
	int r = spool_open(s, &sp, e);
	if (r < 0)
		return r;
	r = spool_read_archive(&sp, fd, e);
	if (r == 0)
		r = import_spooled(s, norm, &sp, info, e);
	spool_close(&sp);
	return r;
}
