/* oci/spool.c - spooling an import stream's members to temp files (see import.c for why). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/import_spool.h"

#define SPOOL_BUF (1 << 16)

int spool_open(struct oci_store *s, struct spool *sp, struct ml_err *e)
{
	memset(sp, 0, sizeof(*sp));
	sp->dir = store_path(s, "tmp/import-XXXXXX");
	if (!sp->dir)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (!mkdtemp(sp->dir)) {
		int r = ml_err_set(e, -errno, "create %s: %m", sp->dir);
		free(sp->dir);
		sp->dir = NULL;
		return r;
	}
	return 0;
}

void spool_close(struct spool *sp)
{
	for (size_t i = 0; i < sp->n; i++) {
		if (sp->m[i]->file)
			unlink(sp->m[i]->file);
		free(sp->m[i]->file);
		free(sp->m[i]->name);
		free(sp->m[i]->link);
		free(sp->m[i]);
	}
	free(sp->m);
	if (sp->dir)
		rmdir(sp->dir);
	free(sp->dir);
	memset(sp, 0, sizeof(*sp));
}

/* Member names are only keys here (spool files are numbered), but "./a" and "a" must match. */
static char *norm_name(const char *name)
{
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	while (*name == '/')
		name++;
	return strdup(name);
}

/* A link target relative to the linking member's directory, ".." resolved lexically. */
static char *link_member(const char *member, const char *target, bool hard)
{
	if (hard || target[0] == '/')
		return norm_name(target);
	_cleanup_free_ char *joined = NULL;
	const char *slash = strrchr(member, '/');
	if (asprintf(&joined, "%.*s%s", slash ? (int)(slash - member + 1) : 0, member, target) < 0)
		return NULL;
	char *out = calloc(1, strlen(joined) + 1);
	if (!out)
		return NULL;
	char *save = NULL;
	for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			char *up = strrchr(out, '/');
			*(up ? up : out) = '\0';
			continue;
		}
		if (*out)
			strcat(out, "/");
		strcat(out, c);
	}
	return out;
}

static struct member *add_member(struct spool *sp, const char *name, struct ml_err *e)
{
	if (sp->n >= OCI_MAX_MEMBERS) {
		ml_err_set(e, -E2BIG, "invalid image archive: more than %u members", OCI_MAX_MEMBERS);
		return NULL;
	}
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? sp->cap * 2 : 64;
		struct member **m = realloc(sp->m, cap * sizeof(*m));
		if (!m) {
			ml_err_set(e, -ENOMEM, "out of memory");
			return NULL;
		}
		sp->m = m;
		sp->cap = cap;
	}
	/* Members are separate allocations: callers keep pointers while more are added. */
	struct member *m = calloc(1, sizeof(*m));
	if (!m || !(m->name = norm_name(name))) {
		free(m);
		ml_err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	sp->m[sp->n++] = m;
	return m;
}

int oci_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Data either from the archive or (buf != NULL) from memory. */
static int spool_data(struct spool *sp, struct member *m, struct archive *a, const void *data,
		      size_t len, struct ml_err *e)
{
	if (asprintf(&m->file, "%s/m%u", sp->dir, sp->seq++) < 0) {
		m->file = NULL;
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	_cleanup_close_ int fd = open(m->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return ml_err_set(e, -errno, "create %s: %m", m->file);
	_cleanup_free_ char *buf = a ? malloc(SPOOL_BUF) : NULL;
	struct sha256 *h = sha256_new();
	int r = (a && !buf) || !h ? ml_err_set(e, -ENOMEM, "out of memory") : 0;
	while (r == 0) {
		ssize_t n = a ? archive_read_data(a, buf, SPOOL_BUF) : (ssize_t)len;
		if (n < 0) {
			r = ml_err_set(e, -EINVAL, "invalid image archive: %s: %s", m->name, archive_error_string(a));
			break;
		}
		if (n == 0)
			break;
		const void *p = a ? buf : data;
		sha256_update(h, p, (size_t)n);
		m->size += (uint64_t)n;
		if ((r = oci_write_all(fd, p, (size_t)n)) < 0)
			r = ml_err_set(e, r, "write %s: %s", m->file, strerror(-r));
		if (!a)
			break;
	}
	if (h)
		sha256_done(h, m->hex);
	return r;
}

static int spool_entry(struct spool *sp, struct archive *a, struct archive_entry *ae, struct ml_err *e)
{
	const char *name = archive_entry_pathname(ae);
	const char *hard = archive_entry_hardlink(ae);
	mode_t type = archive_entry_filetype(ae);
	if (!name)
		return ml_err_set(e, -EINVAL, "invalid image archive: member without a name");
	if (!hard && type != AE_IFREG && type != AE_IFLNK)
		return 0; /* directories and the rest carry nothing we need */
	struct member *m = add_member(sp, name, e);
	if (!m)
		return e->code;
	if (hard || type == AE_IFLNK) {
		const char *t = hard ? hard : archive_entry_symlink(ae);
		if (!t || !(m->link = link_member(m->name, t, hard != NULL)))
			return ml_err_set(e, -EINVAL, "invalid image archive: %s: bad link", m->name);
		return 0;
	}
	return spool_data(sp, m, a, NULL, 0, e);
}

int spool_read_archive(struct spool *sp, int fd, struct ml_err *e)
{
	struct archive *a = archive_read_new();
	if (!a)
		return ml_err_set(e, -ENOMEM, "out of memory");
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	int r = 0;
	if (archive_read_open_fd(a, fd, SPOOL_BUF) != ARCHIVE_OK)
		r = ml_err_set(e, -EINVAL, "invalid image archive: %s", archive_error_string(a));
	bool any = false;
	while (r == 0) {
		struct archive_entry *ae;
		int rc = archive_read_next_header(a, &ae);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc < ARCHIVE_WARN) {
			r = ml_err_set(e, -EINVAL, "invalid image archive: %s", archive_error_string(a));
			break;
		}
		any = true;
		r = spool_entry(sp, a, ae, e);
	}
	if (r == 0 && !any)
		r = ml_err_set(e, -EINVAL, "invalid image archive: empty");
	archive_read_free(a);
	return r;
}

const struct member *spool_find(struct spool *sp, const char *name)
{
	_cleanup_free_ char *want = norm_name(name);
	for (int hop = 0; want && hop < 2; hop++) {
		const struct member *m = NULL;
		for (size_t i = sp->n; i-- > 0;)
			if (strcmp(sp->m[i]->name, want) == 0) {
				m = sp->m[i];
				break;
			}
		if (!m || !m->link)
			return m;
		free(want);
		want = strdup(m->link);
	}
	return NULL;
}

int spool_slurp(const struct member *m, char **buf, size_t *len, struct ml_err *e)
{
	_cleanup_close_ int fd = open(m->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_set(e, -errno, "open %s: %m", m->file);
	char *b = malloc(m->size + 1);
	if (!b)
		return ml_err_set(e, -ENOMEM, "out of memory");
	size_t got = 0;
	while (got < m->size) {
		ssize_t n = read(fd, b + got, m->size - got);
		if (n <= 0) {
			free(b);
			return ml_err_set(e, -EIO, "read %s: short read", m->file);
		}
		got += (size_t)n;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

int spool_commit(struct oci_store *s, struct spool *sp, const struct member *m, const char *kind,
		 struct ml_err *e)
{
	(void)sp;
	_cleanup_free_ char *dst = store_path(s, "blobs/sha256_%s.%s", m->hex, kind);
	if (!dst)
		return ml_err_set(e, -ENOMEM, "out of memory");
	struct stat st;
	if (stat(dst, &st) == 0)
		return 0; /* content-addressed: the same bytes are already there */
	_cleanup_close_ int fd = open(m->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return ml_err_set(e, -errno, "sync %s: %m", m->file);
	/* A link can make two plan entries share one spool file: copy by hard link, not rename. */
	if (link(m->file, dst) < 0 && errno != EEXIST)
		return ml_err_set(e, -errno, "store blob %s: %m", dst);
	return 0;
}

static json_t *descriptor(const char *mt, const struct member *m)
{
	char d[72];
	snprintf(d, sizeof(d), "sha256:%s", m->hex);
	return json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", d, "size", (json_int_t)m->size);
}

int spool_docker_manifest(struct spool *sp, const struct member *config,
			  const struct member **layers, size_t n, const struct member **out,
			  struct ml_err *e)
{
	json_t *ls = json_array();
	for (size_t i = 0; ls && i < n; i++)
		json_array_append_new(ls, descriptor("application/vnd.oci.image.layer.v1.tar", layers[i]));
	json_t *m = ls ? json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType",
				   "application/vnd.oci.image.manifest.v1+json", "config",
				   descriptor("application/vnd.oci.image.config.v1+json", config),
				   "layers", ls) : NULL;
	_cleanup_free_ char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	if (!text)
		return ml_err_set(e, -ENOMEM, "out of memory");
	struct member *mm = add_member(sp, "<manifest>", e);
	if (!mm)
		return e->code;
	int r = spool_data(sp, mm, NULL, text, strlen(text), e);
	*out = mm;
	return r;
}
