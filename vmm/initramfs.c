/* vmm/initramfs.c - builds the guest's initramfs once and reuses it from the cache.
 *
 * Contents: /init (the agent), /lib/modules/<file>.ko for the modules it loads, /modules.order
 * (their file names, one a line, in load order), the directories the agent mounts on, and
 * /dev/console, which the kernel opens for init's stdio before init runs (devtmpfs is not
 * mounted yet then).
 *
 * Cache: <cache_dir>/initramfs/<key>.cpio. The key is a SHA-256 over the agent's bytes, the
 * kernel version, the module list and the kernel file's size and mtime, so a rebuilt agent or a
 * new kernel gives a new file. Several matchlock processes may build at once: each writes its own
 * temp file, fsyncs it and renames it into place; rename is atomic, so a reader sees either no
 * file or a whole one, and identical keys mean identical contents. The archive is not compressed:
 * it is small and local, and compressing it made no difference to boot time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "vmm/vmm_internal.h"

/* Bump when the layout of the archive changes, so old caches are not reused. */
#define INITRAMFS_FORMAT "matchlock-initramfs-1"
#define AGENT_MAX (256u << 20)
/* A cached archive not used for this long, or a temp file this old, may be removed. Archives
 * used recently are kept, as another matchlock (an older version) may be about to boot one. */
#define STALE_SECONDS (10 * 60)

static int read_agent(const char *path, char **data, size_t *len, struct ml_err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_set(e, -errno, "open guest agent %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ml_err_set(e, -errno, "stat %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > AGENT_MAX)
		return ml_err_set(e, -EINVAL, "guest agent %s: not a regular file of sane size", path);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size);
	if (!buf)
		return ml_err_set(e, -ENOMEM, "out of memory");
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ml_err_set(e, n < 0 ? -errno : -EIO, "read guest agent %s: %s", path,
					  n < 0 ? strerror(errno) : "file shrank");
		got += (size_t)n;
	}
	*data = steal_ptr(&buf);
	*len = got;
	return 0;
}

static const char *file_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int hash_part(gnutls_hash_hd_t h, const void *p, size_t n)
{
	/* length first, so ("ab","c") and ("a","bc") hash differently */
	uint64_t len = n;
	if (gnutls_hash(h, &len, sizeof(len)) < 0 || gnutls_hash(h, p, n) < 0)
		return -EIO;
	return 0;
}

int vmm_initramfs_key(const struct vmm_assets *a, const void *agent, size_t agent_len,
		      char *const *modules, char key[65], struct ml_err *e)
{
	struct stat st;
	if (stat(a->kernel, &st) < 0)
		return ml_err_set(e, -errno, "stat guest kernel %s: %s", a->kernel, strerror(errno));
	uint64_t kstamp[3] = { (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
			       (uint64_t)st.st_mtim.tv_nsec };
	gnutls_hash_hd_t h;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return ml_err_set(e, -EIO, "gnutls: cannot start a SHA-256 hash");
	int r = hash_part(h, INITRAMFS_FORMAT, strlen(INITRAMFS_FORMAT));
	r = r ? r : hash_part(h, agent, agent_len);
	r = r ? r : hash_part(h, a->kver, strlen(a->kver));
	for (size_t i = 0; r == 0 && modules[i]; i++)
		r = hash_part(h, modules[i], strlen(modules[i]));
	r = r ? r : hash_part(h, kstamp, sizeof(kstamp));
	unsigned char digest[32];
	gnutls_hash_deinit(h, digest);
	if (r < 0)
		return ml_err_set(e, r, "gnutls: hashing the initramfs key failed");
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(key + 2 * i, 3, "%02x", digest[i]);
	return 0;
}

/* mkdir -p, 0700: the cache is per user. */
static int mkdir_p(const char *dir, struct ml_err *e)
{
	_cleanup_free_ char *p = strdup(dir);
	if (!p)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return ml_err_set(e, -errno, "create %s: %s", p, strerror(errno));
		if (!s)
			return 0;
		*s = '/';
	}
}

static char *module_src(const char *modules_dir, const char *rel)
{
	char *p;
	if (rel[0] == '/')
		return strdup(rel); /* old depmod wrote absolute paths */
	return asprintf(&p, "%s/%s", modules_dir, rel) < 0 ? NULL : p;
}

static int write_modules(struct cpio_writer *w, const char *modules_dir, char *const *modules,
			 struct ml_err *e)
{
	size_t order_len = 0;
	for (size_t i = 0; modules[i]; i++)
		order_len += strlen(file_name(modules[i])) + 1;
	_cleanup_free_ char *order = malloc(order_len + 1);
	if (!order)
		return ml_err_set(e, -ENOMEM, "out of memory");
	order[0] = '\0';
	for (size_t i = 0; modules[i]; i++) {
		_cleanup_free_ char *src = module_src(modules_dir, modules[i]);
		_cleanup_free_ char *dst = NULL;
		if (!src || asprintf(&dst, "lib/modules/%s", file_name(modules[i])) < 0)
			return ml_err_set(e, -ENOMEM, "out of memory");
		int r = cpio_add_file(w, dst, 0644, src, e);
		if (r < 0)
			return r;
		strcat(order, file_name(modules[i]));
		strcat(order, "\n");
	}
	int r = cpio_add_data(w, "modules.order", 0644, order, strlen(order));
	return r < 0 ? ml_err_set(e, r, "write initramfs: %s", strerror(-r)) : 0;
}

static int write_archive(FILE *f, const struct vmm_assets *a, const char *agent, size_t agent_len,
			 char *const *modules, struct ml_err *e)
{
	static const char *const dirs[] = { "dev", "proc", "sys", "mnt", "lib", "lib/modules", NULL };
	struct cpio_writer w;
	cpio_writer_init(&w, f);
	int r = 0;
	for (size_t i = 0; r == 0 && dirs[i]; i++)
		r = cpio_add_dir(&w, dirs[i], 0755);
	r = r ? r : cpio_add_chardev(&w, "dev/console", 0600, 5, 1);
	r = r ? r : cpio_add_data(&w, "init", 0755, agent, agent_len);
	if (r < 0)
		return ml_err_set(e, r, "write initramfs: %s", strerror(-r));
	if ((r = write_modules(&w, a->modules_dir, modules, e)) < 0)
		return r;
	if ((r = cpio_finish(&w)) < 0 || fflush(f) != 0 || fsync(fileno(f)) < 0)
		return ml_err_set(e, r < 0 ? r : -errno, "write initramfs: %s",
				  strerror(r < 0 ? -r : errno));
	return 0;
}

/* Temp name unique across processes and threads: pid plus a per-call nonce. */
static int build_to(const char *final, const struct vmm_assets *a, const char *agent,
		    size_t agent_len, char *const *modules, struct ml_err *e)
{
	static unsigned counter;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp.%d.%u.%ld", final, (int)getpid(),
		     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), ts.tv_nsec) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return ml_err_set(e, -errno, "create %s: %s", tmp, strerror(errno));
	FILE *f = fdopen(fd, "we");
	if (!f) {
		close(fd);
		unlink(tmp);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	int r = write_archive(f, a, agent, agent_len, modules, e);
	if (fclose(f) != 0 && r == 0)
		r = ml_err_set(e, -errno, "write %s: %s", tmp, strerror(errno));
	if (r == 0 && rename(tmp, final) < 0)
		r = ml_err_set(e, -errno, "rename %s: %s", tmp, strerror(errno));
	if (r < 0)
		unlink(tmp);
	return r;
}

static bool is_stale_name(const char *name, const char *current)
{
	size_t n = strlen(name);
	if (!strncmp(name, current, strlen(current)))
		return false;
	return strstr(name, ".cpio.tmp.") || (n > 5 && !strcmp(name + n - 5, ".cpio"));
}

/* Best effort: a failure here only leaves a file behind. */
static void remove_stale(const char *dir, const char *current)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!is_stale_name(de->d_name, current) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    now - st.st_mtime < STALE_SECONDS)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			ml_debug("removed stale initramfs %s/%s", dir, de->d_name);
	}
}

int vmm_initramfs(const struct vmm_assets *a, const char *cache_dir, char **path, struct ml_err *e)
{
	_cleanup_strv_ char **modules = NULL;
	int r = vmm_modules_closure(a->modules_dir, vmm_needed_modules, &modules, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *agent = NULL;
	size_t agent_len = 0;
	if ((r = read_agent(a->agent, &agent, &agent_len, e)) < 0)
		return r;
	char key[65];
	if ((r = vmm_initramfs_key(a, agent, agent_len, modules, key, e)) < 0)
		return r;
	_cleanup_free_ char *dir = NULL, *final = NULL;
	if (asprintf(&dir, "%s/initramfs", cache_dir) < 0 ||
	    asprintf(&final, "%s/%s.cpio", dir, key) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if ((r = mkdir_p(dir, e)) < 0)
		return r;
	struct stat st;
	if (stat(final, &st) == 0 && S_ISREG(st.st_mode)) {
		/* mark it used, so another process's stale sweep leaves it alone */
		utimensat(AT_FDCWD, final, NULL, 0);
	} else {
		ml_info("building initramfs %s", final);
		if ((r = build_to(final, a, agent, agent_len, modules, e)) < 0)
			return ml_err_wrap(e, "build initramfs");
	}
	remove_stale(dir, key);
	*path = steal_ptr(&final);
	return 0;
}
