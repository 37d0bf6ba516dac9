/* oci/catalog.c - the tags in metadata.db: recording a pulled image, listing, removing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/internal.h"

static void now_rfc3339(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

static bool record_rows(struct oci_store *s, const struct store_record *rec, const char *now)
{
	sqlite3_stmt *img = NULL, *del = NULL, *lay = NULL;
	_cleanup_free_ char *rootfs = store_path(s, "rootfs/%s.ext4", rec->digest + 7);
	bool ok = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO images (scope, tag, digest, size,"
			" created_at, source, rootfs_path, oci_json, updated_at) VALUES (?1, ?2, ?3, ?4, ?5,"
			" ?6, ?7, ?8, ?5)", -1, &img, NULL) == SQLITE_OK &&
		  sqlite3_prepare_v2(s->db, "DELETE FROM image_layers WHERE scope = ?1 AND tag = ?2",
				     -1, &del, NULL) == SQLITE_OK &&
		  sqlite3_prepare_v2(s->db, "INSERT INTO image_layers (scope, tag, ordinal, digest, fs_type,"
				     " size) VALUES (?1, ?2, ?3, ?4, 'tar', ?5)", -1, &lay, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_text(img, 1, rec->scope, -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 2, rec->tag, -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 3, rec->digest, -1, SQLITE_STATIC);
		sqlite3_bind_int64(img, 4, (sqlite3_int64)rec->size);
		sqlite3_bind_text(img, 5, now, -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 6, rec->source, -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 7, rootfs ? rootfs : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(img, 8, rec->config_json, (int)rec->config_len, SQLITE_STATIC);
		ok = sqlite3_step(img) == SQLITE_DONE;
		sqlite3_bind_text(del, 1, rec->scope, -1, SQLITE_STATIC);
		sqlite3_bind_text(del, 2, rec->tag, -1, SQLITE_STATIC);
		ok = ok && sqlite3_step(del) == SQLITE_DONE;
	}
	for (size_t i = 0; ok && i < rec->n_layers; i++) {
		sqlite3_reset(lay);
		sqlite3_bind_text(lay, 1, rec->scope, -1, SQLITE_STATIC);
		sqlite3_bind_text(lay, 2, rec->tag, -1, SQLITE_STATIC);
		sqlite3_bind_int64(lay, 3, (sqlite3_int64)i);
		sqlite3_bind_text(lay, 4, rec->layer_digests[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(lay, 5, (sqlite3_int64)rec->layer_sizes[i]);
		ok = sqlite3_step(lay) == SQLITE_DONE;
	}
	sqlite3_finalize(img);
	sqlite3_finalize(del);
	sqlite3_finalize(lay);
	return ok;
}

int store_record(struct oci_store *s, const struct store_record *rec, struct ml_err *e)
{
	char now[32];
	now_rfc3339(now);
	bool ok = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	ok = ok && record_rows(s, rec, now);
	ok = ok && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	if (ok)
		return 0;
	int r = ml_err_set(e, -EIO, "image store: tag %s: %s", rec->tag, sqlite3_errmsg(s->db));
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int64_t parse_created(const char *t)
{
	struct tm tm = {0};
	if (!t || (!strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) && !strptime(t, "%Y-%m-%d %H:%M:%S", &tm)))
		return 0;
	return (int64_t)timegm(&tm);
}

void oci_rows_free(struct oci_image_row *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++) {
		free(rows[i].tag);
		free(rows[i].scope);
		free(rows[i].source);
	}
	free(rows);
}

static char *text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

int oci_list(struct oci_store *s, struct oci_image_row **rows, size_t *n, struct ml_err *e)
{
	sqlite3_stmt *st = NULL;
	const char *q = "SELECT tag, scope, source, size, created_at FROM images ORDER BY"
			" CASE scope WHEN 'local' THEN 0 ELSE 1 END, created_at DESC, tag";
	if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK)
		return ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
	struct oci_image_row *v = NULL;
	size_t cnt = 0, cap = 0;
	int r = 0, rc;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			struct oci_image_row *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = ml_err_set(e, -ENOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		struct oci_image_row *row = &v[cnt++];
		row->tag = text(st, 0);
		row->scope = text(st, 1);
		row->source = text(st, 2);
		row->size = (uint64_t)sqlite3_column_int64(st, 3);
		row->created = parse_created((const char *)sqlite3_column_text(st, 4));
		if (!row->tag || !row->scope || !row->source)
			r = ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	if (r < 0) {
		oci_rows_free(v, cnt);
		return r;
	}
	*rows = v;
	*n = cnt;
	return 0;
}

/* Deletes the tag from the first scope that has it; *found says whether any did. */
static int delete_tag(struct oci_store *s, const char *tag, bool *found, struct ml_err *e)
{
	static const char *scopes[] = { "local", "registry" };
	*found = false;
	bool ok = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	for (size_t i = 0; ok && !*found && i < 2; i++) {
		sqlite3_stmt *a = NULL, *b = NULL;
		ok = sqlite3_prepare_v2(s->db, "DELETE FROM images WHERE scope = ?1 AND tag = ?2", -1, &a,
					NULL) == SQLITE_OK &&
		     sqlite3_prepare_v2(s->db, "DELETE FROM image_layers WHERE scope = ?1 AND tag = ?2", -1,
					&b, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_text(a, 1, scopes[i], -1, SQLITE_STATIC);
			sqlite3_bind_text(a, 2, tag, -1, SQLITE_STATIC);
			sqlite3_bind_text(b, 1, scopes[i], -1, SQLITE_STATIC);
			sqlite3_bind_text(b, 2, tag, -1, SQLITE_STATIC);
			ok = sqlite3_step(a) == SQLITE_DONE;
			*found = ok && sqlite3_changes(s->db) > 0;
			ok = ok && sqlite3_step(b) == SQLITE_DONE;
		}
		sqlite3_finalize(a);
		sqlite3_finalize(b);
	}
	ok = ok && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	if (ok)
		return 0;
	int r = ml_err_set(e, -EIO, "image store: remove %s: %s", tag, sqlite3_errmsg(s->db));
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int oci_remove(struct oci_store *s, const char *tag, struct ml_err *e)
{
	struct ml_err tmp = {0};
	_cleanup_free_ char *norm = oci_ref_normalize(tag, &tmp);
	if (!norm)
		return ml_err_set(e, -ENOENT, "image not found: \"%s\"", tag);
	bool found = false;
	int r = delete_tag(s, norm, &found, e);
	if (r < 0)
		return r;
	if (!found)
		return ml_err_set(e, -ENOENT, "image not found: \"%s\"", tag);
	/* a pull in progress holds the lock shared: leave pruning to the next gc then */
	int lk = store_lock(s, true, true, &tmp);
	if (lk < 0)
		return 0;
	struct oci_gc_info info = {0};
	r = store_prune(s, &info, false, &tmp);
	close(lk);
	return 0;
}
