/* disk/volume.c - named volumes: <dir>/<name>.ext4, sparse ext4 images with a journal, made by
 * our own writer (ext4/), so no mkfs is needed. Every new file is built under a temp name,
 * fsynced and renamed without replacing anything (renameat2 RENAME_NOREPLACE), then the
 * directory is fsynced: a crash leaves either the whole volume or none. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "disk/internal.h"
#include "ext4/ext4.h"

#define SUFFIX ".ext4"
#define TEMP_PREFIX ".tmp-"

static bool name_char(char c, bool first)
{
	return isalnum((unsigned char)c) || (!first && (c == '_' || c == '.' || c == '-'));
}

int volume_name_check(const char *name, char out[VOLUME_NAME_MAX + 1], struct ml_err *e)
{
	while (isspace((unsigned char)*name))
		name++;
	size_t n = strlen(name);
	while (n > 0 && isspace((unsigned char)name[n - 1]))
		n--;
	if (n == 0)
		return ml_err_set(e, -EINVAL, "invalid volume name: name cannot be empty");
	bool ok = n <= VOLUME_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = name_char(name[i], i == 0);
	if (!ok)
		return ml_err_set(e, -EINVAL, "invalid volume name: \"%.*s\" (allowed: alphanumeric, '_', "
				  "'.', '-', must start with alphanumeric)", (int)(n > 256 ? 256 : n), name);
	memcpy(out, name, n);
	out[n] = '\0';
	return 0;
}

char *volume_path(const char *dir, const char *name, struct ml_err *e)
{
	char t[VOLUME_NAME_MAX + 1];
	char *p = NULL;
	if (volume_name_check(name, t, e) < 0)
		return NULL;
	if (asprintf(&p, "%s/%s" SUFFIX, dir, t) < 0) {
		ml_err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	return p;
}

int volume_find(const char *dir, const char *name, char **path, struct ml_err *e)
{
	_cleanup_free_ char *p = volume_path(dir, name, e);
	if (!p)
		return e->code;
	struct stat st;
	if (stat(p, &st) < 0) {
		if (errno == ENOENT)
			return ml_err_set(e, -ENOENT, "named volume not found: %s", name);
		return ml_err_set(e, -errno, "resolve volume directory: %m");
	}
	*path = steal_ptr(&p);
	return 0;
}

char *volume_temp_path(const char *dir, const char *name)
{
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	char *p = NULL;
	return asprintf(&p, "%s/" TEMP_PREFIX "%d-%s", dir, (int)getpid(), base) < 0 ? NULL : p;
}

/* A temp file whose maker is gone is what a crash left: nobody will rename it now. */
void volume_sweep_temps(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		int pid = 0;
		if (strncmp(de->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0 ||
		    sscanf(de->d_name + strlen(TEMP_PREFIX), "%d-", &pid) != 1 || pid <= 0)
			continue;
		if (pid != getpid() && kill(pid, 0) < 0 && errno == ESRCH)
			unlinkat(dirfd(d), de->d_name, 0);
	}
}

int volume_publish(const char *dir, const char *tmp, const char *path, const char *name,
		   struct ml_err *e)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		int err = errno;
		unlink(tmp);
		if (err == EEXIST)
			return ml_err_set(e, -EEXIST, "named volume already exists: %s", name);
		return ml_err_set(e, -err, "rename %s: %s", path, strerror(err));
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return ml_err_set(e, -errno, "fsync %s: %m", dir);
	return 0;
}

static int make_image(const char *tmp, uint64_t bytes, struct ml_err *e)
{
	struct ext4_img *img = NULL;
	/* 16 KiB per inode, as mke2fs's default for this size */
	int r = ext4_create(tmp, bytes, bytes / 16384, &img, e);
	if (r == 0 && (r = ext4_add_journal(img, e)) < 0)
		ext4_abort(img);
	else if (r == 0)
		r = ext4_finish(img, e);
	return r;
}

int volume_create(const char *dir, const char *name, long size_mb, char **path, struct ml_err *e)
{
	if (size_mb <= 0)
		return ml_err_set(e, -EINVAL, "create named volume: size must be > 0 MB");
	/* the writer's limit (16 TiB), said in the flag's unit */
	if (size_mb > (16L << 20))
		return ml_err_set(e, -EINVAL, "create named volume: size must be <= %ld MB", 16L << 20);
	char t[VOLUME_NAME_MAX + 1];
	if (volume_name_check(name, t, e) < 0)
		return e->code;
	_cleanup_free_ char *p = volume_path(dir, t, e);
	_cleanup_free_ char *tmp = volume_temp_path(dir, t);
	if (!p || !tmp)
		return p ? ml_err_set(e, -ENOMEM, "out of memory") : e->code;
	struct stat st;
	if (stat(p, &st) == 0)
		return ml_err_set(e, -EEXIST, "named volume already exists: %s", t);
	volume_sweep_temps(dir);
	int r = make_image(tmp, (uint64_t)size_mb << 20, e);
	if (r < 0) {
		unlink(tmp);
		return ml_err_wrap(e, "create named volume");
	}
	if ((r = volume_publish(dir, tmp, p, t, e)) < 0)
		return r;
	*path = steal_ptr(&p);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct volume_info *)a)->name, ((const struct volume_info *)b)->name);
}

static int list_add(struct volume_info **v, size_t *n, const char *dir, const char *file, size_t namelen,
		    uint64_t size)
{
	struct volume_info *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	struct volume_info *i = &nv[*n];
	i->size = size;
	i->name = strndup(file, namelen);
	if (!i->name || asprintf(&i->path, "%s/%s", dir, file) < 0) {
		free(i->name);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

int volume_list(const char *dir, struct volume_info **out, size_t *n, struct ml_err *e)
{
	*out = NULL;
	*n = 0;
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : ml_err_set(e, -errno, "list volumes: %s: %m", dir);
	struct dirent *de;
	size_t sl = strlen(SUFFIX);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		struct stat st;
		if (de->d_name[0] == '.' || len <= sl || strcmp(de->d_name + len - sl, SUFFIX) != 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (list_add(out, n, dir, de->d_name, len - sl, (uint64_t)st.st_size) < 0) {
			volume_list_free(*out, *n);
			*out = NULL;
			*n = 0;
			return ml_err_set(e, -ENOMEM, "out of memory");
		}
	}
	if (*n)
		qsort(*out, *n, sizeof(**out), by_name);
	return 0;
}

void volume_list_free(struct volume_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].path);
	}
	free(v);
}

int volume_remove(const char *dir, const char *holders_dir, const char *name, struct ml_err *e)
{
	char t[VOLUME_NAME_MAX + 1];
	if (volume_name_check(name, t, e) < 0)
		return e->code;
	_cleanup_free_ char *p = volume_path(dir, t, e);
	if (!p)
		return e->code;
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return ml_err_set(e, -ENOENT, "named volume not found: %s", t);
	/* removing the file under a running VM would not stop it: its writes would go on into a
	 * file nobody can reach and vanish when it ends, so say who uses it instead */
	char who[64];
	if (fd >= 0 && lock_probe(fd, holders_dir, who, sizeof(who)) == -EBUSY)
		return ml_err_set(e, -EBUSY, "named volume %s is in use by %s", t, who);
	if (unlink(p) < 0)
		return ml_err_set(e, -errno, "remove named volume: %m");
	return 0;
}
