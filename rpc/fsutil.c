/* rpc/fsutil.c - the per-user directories and small filesystem helpers. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc/sandbox.h"

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (h && *h)
		return h;
	struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_dir : "/";
}

char *ml_cache_dir(void)
{
	char *p = NULL;
	const char *x = getenv("XDG_CACHE_HOME");
	int r = (x && *x) ? asprintf(&p, "%s/matchlock", x) : asprintf(&p, "%s/.cache/matchlock", home_dir());
	return r < 0 ? NULL : p;
}

char *ml_state_dir(void)
{
	char *p = NULL;
	return asprintf(&p, "%s/.matchlock", home_dir()) < 0 ? NULL : p;
}

int ml_store_open(struct oci_store **out, struct ml_err *e)
{
	char *cache = ml_cache_dir();
	if (!cache)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int r = ml_mkdir_p(cache, 0700);
	if (r < 0)
		ml_err_set(e, r, "creating %s: %s", cache, strerror(-r));
	else
		r = oci_store_open(cache, out, e);
	free(cache);
	return r;
}

int ml_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int r = (type == FTW_DP || type == FTW_D) ? rmdir(path) : unlink(path);
	return (r < 0 && errno != ENOENT) ? -errno : 0;
}

int ml_rm_rf(const char *path)
{
	int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r < 0 && errno == ENOENT)
		return 0;
	return r;
}
