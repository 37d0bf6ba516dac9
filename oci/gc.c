/* oci/gc.c - what no tag references any more: blobs, rootfs images, temp files of pulls and
 * imports that died, and the per-blob lock files. Runs under the store lock held exclusive, so
 * no pull is between "blob in place" and "tag recorded" while it decides what is garbage. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/internal.h"

#define STALE_SECS 3600

int store_lock(struct oci_store *s, bool exclusive, bool nb, struct ml_err *e)
{
	_cleanup_free_ char *p = store_path(s, "locks/store.lock");
	if (!p)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ml_err_set(e, -errno, "open %s: %m", p);
	while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (nb ? LOCK_NB : 0)) < 0) {
		if (errno == EINTR)
			continue;
		int err = errno;
		close(fd);
		return err == EWOULDBLOCK ? -EWOULDBLOCK : ml_err_set(e, -err, "lock %s: %s", p, strerror(err));
	}
	return fd;
}

struct hexset {
	char **v;
	size_t n, cap;
};

static int hs_add(struct hexset *h, const char *digest)
{
	if (!digest_valid(digest))
		return 0;
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		char **v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	if (!(h->v[h->n] = strdup(digest + 7)))
		return -ENOMEM;
	h->n++;
	return 0;
}

static bool hs_has(const struct hexset *h, const char *hex, size_t len)
{
	for (size_t i = 0; i < h->n; i++)
		if (len == 64 && strncmp(h->v[i], hex, 64) == 0)
			return true;
	return false;
}

static void hs_free(struct hexset *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i]);
	free(h->v);
}

/* The config digest a stored manifest names (so the config blob stays). */
static int add_config_of(struct oci_store *s, struct hexset *keep, const char *mdigest)
{
	_cleanup_free_ char *p = store_path(s, "blobs/sha256_%s.json", mdigest + 7);
	json_t *j = p ? json_load_file(p, 0, NULL) : NULL;
	int r = hs_add(keep, json_string_value(json_object_get(json_object_get(j, "config"), "digest")));
	json_decref(j);
	return r;
}

static int referenced(struct oci_store *s, struct hexset *keep, struct hexset *images, struct ml_err *e)
{
	static const char *q[] = { "SELECT DISTINCT digest FROM image_layers", "SELECT DISTINCT digest FROM images" };
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(s->db, q[i], -1, &st, NULL) != SQLITE_OK)
			return ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
		int rc, r = 0;
		while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(st, 0);
			r = hs_add(keep, d);
			if (r == 0 && i == 1 && digest_valid(d))
				r = hs_add(images, d) < 0 ? -ENOMEM : add_config_of(s, keep, d);
		}
		sqlite3_finalize(st);
		if (r < 0)
			return ml_err_set(e, r, "out of memory");
		if (rc != SQLITE_DONE)
			return ml_err_set(e, -EIO, "image store: %s", sqlite3_errmsg(s->db));
	}
	return 0;
}

static void drop(int dfd, const char *name, bool dir, unsigned *count, struct oci_gc_info *info)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (dir) {
		int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		DIR *d = sub >= 0 ? fdopendir(sub) : NULL;
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				unlinkat(sub, de->d_name, 0);
		if (d)
			closedir(d);
		else if (sub >= 0)
			close(sub);
	}
	if (unlinkat(dfd, name, dir ? AT_REMOVEDIR : 0) == 0) {
		(*count)++;
		info->bytes += (uint64_t)st.st_blocks * 512;
	}
}

/* name = "<prefix><64 hex><rest>": the hex part, or NULL. */
static const char *hex_after(const char *name, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(name, prefix, pl) != 0 || strlen(name) < pl + 64)
		return NULL;
	for (size_t i = pl; i < pl + 64; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return NULL;
	return name + pl;
}

typedef void (*sweep_fn)(struct oci_store *s, int dfd, const char *name, const struct hexset *keep,
			 struct oci_gc_info *info);

static void sweep(struct oci_store *s, const char *sub, sweep_fn fn, const struct hexset *keep,
		  struct oci_gc_info *info)
{
	_cleanup_free_ char *p = store_path(s, "%s", sub);
	DIR *d = p ? opendir(p) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			fn(s, dirfd(d), de->d_name, keep, info);
	if (d)
		closedir(d);
}

static void sweep_blob(struct oci_store *s, int dfd, const char *name, const struct hexset *keep,
		       struct oci_gc_info *info)
{
	(void)s;
	const char *hex = hex_after(name, "sha256_");
	if (hex && !hs_has(keep, hex, 64))
		drop(dfd, name, false, &info->blobs, info);
}

static void sweep_rootfs(struct oci_store *s, int dfd, const char *name, const struct hexset *images,
			 struct oci_gc_info *info)
{
	(void)s;
	const char *hex = hex_after(name, "");
	const char *tmp = strstr(name, ".tmp.");
	if (!hex)
		return;
	if (tmp) {
		pid_t pid = (pid_t)atoi(tmp + 5);
		if (pid > 0 && kill(pid, 0) < 0 && errno == ESRCH)
			drop(dfd, name, false, &info->temps, info);
	} else if (!hs_has(images, hex, 64) && !strcmp(hex + 64, ".ext4")) {
		drop(dfd, name, false, &info->rootfs, info);
	} else if (!hs_has(images, hex, 64) && !strcmp(hex + 64, ".lock")) {
		unlinkat(dfd, name, 0);
	}
}

/* Temp files: of a blob nobody is downloading (we hold the store lock exclusive), or old. */
static void sweep_tmp(struct oci_store *s, int dfd, const char *name, const struct hexset *keep,
		      struct oci_gc_info *info)
{
	(void)s;
	(void)keep;
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	bool old = time(NULL) - st.st_mtime > STALE_SECS;
	if (hex_after(name, "blob-") || old)
		drop(dfd, name, S_ISDIR(st.st_mode), &info->temps, info);
}

static void sweep_lock(struct oci_store *s, int dfd, const char *name, const struct hexset *keep,
		       struct oci_gc_info *info)
{
	(void)s;
	(void)keep;
	(void)info;
	if (hex_after(name, ""))
		unlinkat(dfd, name, 0);
}

int store_prune(struct oci_store *s, struct oci_gc_info *info, bool temps, struct ml_err *e)
{
	struct hexset keep = {0}, images = {0};
	int r = referenced(s, &keep, &images, e);
	if (r == 0) {
		sweep(s, "blobs", sweep_blob, &keep, info);
		sweep(s, "rootfs", sweep_rootfs, &images, info);
		sweep(s, "locks", sweep_lock, &keep, info);
		if (temps)
			sweep(s, "tmp", sweep_tmp, &keep, info);
	}
	hs_free(&keep);
	hs_free(&images);
	return r;
}

int oci_gc(struct oci_store *s, struct oci_gc_info *info, struct ml_err *e)
{
	memset(info, 0, sizeof(*info));
	int lk = store_lock(s, true, false, e);
	if (lk < 0)
		return lk;
	int r = store_prune(s, info, true, e);
	close(lk);
	return r;
}
