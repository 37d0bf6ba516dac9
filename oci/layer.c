/* oci/layer.c - one OCI layer (tar, gzip or zstd; sniffed by libarchive) streamed straight
 * into the ext4 image: nothing is extracted on the host and no privilege is needed, because
 * owners, modes and device numbers are written into inodes, not asked of the kernel.
 * Whiteouts: ".wh.<name>" removes <name> from lower layers; ".wh..wh..opq" empties its
 * directory of lower-layer content. Paths escaping the root reject the whole layer. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "oci/internal.h"

#define LAYER_BUF (128 * 1024)
#define MAX_XATTRS 128
#define ENTRY_COST 512 /* what a header costs against the expansion budget */

struct data_src {
	struct archive *a;
	uint64_t *budget;
};

static int charge(uint64_t *budget, uint64_t n, struct ml_err *e)
{
	if (n > *budget)
		return ml_err_set(e, -EFBIG, "image expands past the %llu MB limit (set MATCHLOCK_MAX_ROOTFS_MB to allow more)",
				  (unsigned long long)(expand_limit() >> 20));
	*budget -= n;
	return 0;
}

static ssize_t read_data(void *ctx, void *buf, size_t len, struct ml_err *e)
{
	struct data_src *s = ctx;
	ssize_t n = archive_read_data(s->a, buf, len);
	if (n < 0)
		return ml_err_set(e, -EINVAL, "%s", archive_error_string(s->a));
	int r = charge(s->budget, (uint64_t)n, e);
	return r < 0 ? r : n;
}

static struct archive *open_layer(int fd, struct ml_err *e)
{
	struct archive *a = archive_read_new();
	if (!a) {
		ml_err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, fd, LAYER_BUF) != ARCHIVE_OK) {
		ml_err_set(e, -EINVAL, "%s", archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static bool xattr_name_ok(const char *n)
{
	return strncmp(n, "user.", 5) == 0 || strncmp(n, "security.", 9) == 0 ||
	       strncmp(n, "trusted.", 8) == 0 || strcmp(n, "system.posix_acl_access") == 0 ||
	       strcmp(n, "system.posix_acl_default") == 0;
}

static size_t collect_xattrs(struct archive_entry *ae, struct ext4_xattr *xs)
{
	size_t n = 0;
	const char *name;
	const void *val;
	size_t len;
	archive_entry_xattr_reset(ae);
	while (n < MAX_XATTRS && archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK)
		if (name && xattr_name_ok(name))
			xs[n++] = (struct ext4_xattr){ name, val, len };
	return n;
}

/* ".wh.<name>" and ".wh..wh..opq"; *handled says whether path was a whiteout at all. */
static int apply_whiteout(struct ext4_img *img, const char *path, bool *handled, struct ml_err *e)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	const char *base = path + len;
	while (base > path && base[-1] != '/')
		base--;
	size_t blen = len - (size_t)(base - path);
	*handled = blen >= 4 && strncmp(base, ".wh.", 4) == 0;
	if (!*handled)
		return 0;
	_cleanup_free_ char *target = NULL;
	bool opaque = blen == 12 && strncmp(base, ".wh..wh..opq", 12) == 0;
	if (!opaque && blen >= 8 && strncmp(base, ".wh..wh.", 8) == 0)
		return 0; /* other aufs bookkeeping: nothing to apply */
	if (asprintf(&target, "%.*s%.*s", (int)(base - path), path, opaque ? 0 : (int)blen - 4,
		     base + 4) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (!opaque && strlen(target) == (size_t)(base - path))
		return 0; /* ".wh." alone names nothing */
	int r = opaque ? ext4_clear_dir(img, *target ? target : "/", e) : ext4_remove(img, target, e);
	return r == -ENOENT ? 0 : r;
}

static int add_entry(struct ext4_img *img, struct archive *a, struct archive_entry *ae,
		     const char *path, uint64_t *budget, struct ml_err *e)
{
	const char *hard = archive_entry_hardlink(ae);
	if (hard)
		return ext4_add_hardlink(img, path, hard, e);
	int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
	if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
		return ml_err_set(e, -EINVAL, "bad owner %lld:%lld", (long long)uid, (long long)gid);
	struct ext4_xattr xs[MAX_XATTRS];
	struct data_src src = { a, budget };
	int64_t mtime = archive_entry_mtime(ae);
	struct ext4_entry ent = {
		.path = path,
		.mode = (uint32_t)(archive_entry_filetype(ae) | (archive_entry_perm(ae) & 07777)),
		.uid = (uint32_t)uid,
		.gid = (uint32_t)gid,
		.mtime = mtime,
		.atime = archive_entry_atime_is_set(ae) ? archive_entry_atime(ae) : mtime,
		.ctime = archive_entry_ctime_is_set(ae) ? archive_entry_ctime(ae) : mtime,
		.rdev_major = (uint32_t)archive_entry_rdevmajor(ae),
		.rdev_minor = (uint32_t)archive_entry_rdevminor(ae),
		.symlink_target = archive_entry_symlink(ae),
		.xattrs = xs,
		.n_xattrs = collect_xattrs(ae, xs),
	};
	if (S_ISREG(ent.mode)) {
		ent.read = read_data;
		ent.read_ctx = &src;
	}
	return ext4_add(img, &ent, e);
}

int layer_apply(struct ext4_img *img, int fd, const char *digest, uint64_t *budget,
		struct ml_err *e)
{
	struct archive *a = open_layer(fd, e);
	if (!a)
		return ml_err_wrap(e, "layer %s", digest);
	int r = 0;
	while (r == 0) {
		struct archive_entry *ae;
		int rc = archive_read_next_header(a, &ae);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc < ARCHIVE_WARN) {
			r = ml_err_set(e, -EINVAL, "layer %s: %s", digest, archive_error_string(a));
			break;
		}
		const char *path = archive_entry_pathname(ae);
		if (!path) {
			r = ml_err_set(e, -EINVAL, "layer %s: entry without a usable name", digest);
			break;
		}
		bool wh = false;
		r = charge(budget, ENTRY_COST, e);
		if (r == 0)
			r = apply_whiteout(img, path, &wh, e);
		if (r == 0 && !wh)
			r = add_entry(img, a, ae, path, budget, e);
		if (r < 0)
			ml_err_wrap(e, "layer %s: entry \"%.200s\"", digest, path);
	}
	archive_read_free(a);
	return r;
}

int layer_measure(int fd, const char *digest, uint64_t *bytes, uint64_t *entries,
		  uint64_t *budget, struct ml_err *e)
{
	struct archive *a = open_layer(fd, e);
	if (!a)
		return ml_err_wrap(e, "layer %s", digest);
	int r = 0;
	while (r == 0) {
		struct archive_entry *ae;
		int rc = archive_read_next_header(a, &ae);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc < ARCHIVE_WARN) {
			r = ml_err_set(e, -EINVAL, "layer %s: %s", digest, archive_error_string(a));
			break;
		}
		int64_t size = archive_entry_size(ae);
		uint64_t blocks = size > 0 ? ((uint64_t)size + 4095) / 4096 : 0;
		if (archive_entry_filetype(ae) != AE_IFREG)
			blocks = 1; /* directory block, slow symlink: at most one */
		*entries += 1;
		*bytes += blocks * 4096;
		r = charge(budget, blocks * 4096 + ENTRY_COST, e);
		if (r == 0 && archive_read_data_skip(a) < ARCHIVE_WARN)
			r = ml_err_set(e, -EINVAL, "%s", archive_error_string(a));
		if (r < 0)
			ml_err_wrap(e, "layer %s", digest);
	}
	archive_read_free(a);
	return r;
}
