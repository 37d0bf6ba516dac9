/* oci/store.c - the image store: directories, the sqlite metadata (schema shared with the
 * upstream tools and their acceptance tests) and tag lookups. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/cleanup.h"
#include "oci/internal.h"

static const char SCHEMA[] =
	"CREATE TABLE IF NOT EXISTS images (scope TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT,"
	" size INTEGER, created_at TEXT, source TEXT, rootfs_path TEXT, oci_json TEXT,"
	" updated_at TEXT, PRIMARY KEY(scope, tag));"
	"CREATE TABLE IF NOT EXISTS image_layers (scope TEXT NOT NULL, tag TEXT NOT NULL,"
	" ordinal INTEGER NOT NULL, digest TEXT, fs_type TEXT DEFAULT 'tar', size INTEGER,"
	" PRIMARY KEY(scope, tag, ordinal));";

char *store_path(const struct oci_store *s, const char *fmt, ...)
{
	char *rel = NULL, *out = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&rel, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (asprintf(&out, "%s/%s", s->dir, rel) < 0)
		out = NULL;
	free(rel);
	return out;
}

/* mkdir -p with 0700 for what we create. */
int store_mkdirs(const char *path, struct ml_err *e)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (char *s = p + 1; ; s++) {
		bool end = *s == '\0';
		if (*s == '/' || end) {
			*s = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST)
				return ml_err_set(e, -errno, "mkdir %s: %m", p);
			if (end)
				break;
			*s = '/';
		}
	}
	return 0;
}

int oci_store_open(const char *cache_dir, struct oci_store **out, struct ml_err *e)
{
	struct oci_store *s = calloc(1, sizeof(*s));
	if (!s || asprintf(&s->dir, "%s/images", cache_dir) < 0) {
		free(s);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	const char *sub[] = { "blobs", "rootfs", "tmp", "locks" };
	int r = store_mkdirs(s->dir, e);
	for (size_t i = 0; r == 0 && i < 4; i++) {
		_cleanup_free_ char *d = store_path(s, "%s", sub[i]);
		r = d ? store_mkdirs(d, e) : ml_err_set(e, -ENOMEM, "out of memory");
	}
	_cleanup_free_ char *db = r == 0 ? store_path(s, "metadata.db") : NULL;
	if (r == 0 && sqlite3_open_v2(db, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				      SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK)
		r = ml_err_set(e, -EIO, "open %s: %s", db, s->db ? sqlite3_errmsg(s->db) : "out of memory");
	if (r == 0) {
		sqlite3_busy_timeout(s->db, 10000);
		char *msg = NULL;
		if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL;", NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(s->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK)
			r = ml_err_set(e, -EIO, "image store %s: %s", db, msg ? msg : "sqlite error");
		sqlite3_free(msg);
	}
	if (r < 0) {
		oci_store_free(s);
		return r;
	}
	*out = s;
	return 0;
}

bool oci_store_exists(const char *cache_dir)
{
	_cleanup_free_ char *db = NULL;
	return asprintf(&db, "%s/images/metadata.db", cache_dir) >= 0 && access(db, F_OK) == 0;
}

void oci_store_free(struct oci_store *s)
{
	if (!s)
		return;
	if (s->db)
		sqlite3_close(s->db);
	free(s->dir);
	free(s);
}

void oci_image_free(struct oci_image *img)
{
	if (!img)
		return;
	free(img->tag);
	free(img->digest);
	config_clear(&img->config);
	free(img);
}

static int64_t parse_time(const char *t)
{
	struct tm tm = {0};
	if (!t || (!strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) && !strptime(t, "%Y-%m-%d %H:%M:%S", &tm)))
		return 0;
	return (int64_t)timegm(&tm);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

int oci_lookup(struct oci_store *s, const char *ref, struct oci_image **out, struct ml_err *e)
{
	return store_lookup(s, ref, NULL, out, e);
}

int store_lookup(struct oci_store *s, const char *ref, const char *scope, struct oci_image **out,
		 struct ml_err *e)
{
	_cleanup_free_ char *tag = oci_ref_normalize(ref, e);
	if (!tag)
		return e ? e->code : -EINVAL;
	sqlite3_stmt *st = NULL;
	const char *q = "SELECT tag, digest, size, created_at, oci_json FROM images WHERE tag = ?"
			" AND (?2 IS NULL OR scope = ?2)"
			" ORDER BY CASE scope WHEN 'local' THEN 0 ELSE 1 END LIMIT 1";
	if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK)
		return ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	if (scope)
		sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), r = 0;
	struct oci_image *img = NULL;
	if (rc == SQLITE_DONE)
		r = ml_err_set(e, -ENOENT, "image not found: %s", ref);
	else if (rc != SQLITE_ROW)
		r = ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
	else if (!(img = calloc(1, sizeof(*img))) || !(img->tag = col_dup(st, 0)) ||
		 !(img->digest = col_dup(st, 1)))
		r = ml_err_set(e, -ENOMEM, "out of memory");
	if (r == 0) {
		img->size = (uint64_t)sqlite3_column_int64(st, 2);
		img->created = parse_time((const char *)sqlite3_column_text(st, 3));
		const char *json = (const char *)sqlite3_column_text(st, 4);
		r = config_parse(json ? json : "{}", json ? (size_t)sqlite3_column_bytes(st, 4) : 2,
				 &img->config, e);
	}
	sqlite3_finalize(st);
	if (r < 0) {
		oci_image_free(img);
		return r;
	}
	*out = img;
	return 0;
}

int store_layers(struct oci_store *s, const char *digest, char ***digests, struct ml_err *e)
{
	sqlite3_stmt *st = NULL;
	const char *q = "SELECT l.digest FROM image_layers l JOIN (SELECT scope, tag FROM images"
			" WHERE digest = ? ORDER BY CASE scope WHEN 'local' THEN 0 ELSE 1 END, tag"
			" LIMIT 1) i ON l.scope = i.scope AND l.tag = i.tag ORDER BY l.ordinal";
	if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK)
		return ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
	sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
	size_t n = 0;
	char **v = calloc(OCI_MAX_LAYERS + 1, sizeof(*v));
	int r = v ? 0 : ml_err_set(e, -ENOMEM, "out of memory"), rc;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 0);
		if (n >= OCI_MAX_LAYERS || !digest_valid(d))
			r = ml_err_set(e, -EINVAL, "image %s: bad layer list in the store", digest);
		else if (!(v[n++] = strdup(d)))
			r = ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	if (r == 0 && n == 0)
		r = ml_err_set(e, -ENOENT, "image %s: no layers in the store", digest);
	if (r < 0) {
		strv_free(v);
		return r;
	}
	*digests = v;
	return 0;
}
