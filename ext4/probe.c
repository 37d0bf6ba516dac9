/* ext4/probe.c - is this file an ext2/3/4 filesystem the guest can mount? Read-only: the file
 * is opened O_RDONLY by libext2fs and nothing is ever written to it, so a user's wrong file
 * (a qcow2, a tarball, a half-copied image) is refused before any VM touches it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

static int open_error(errcode_t rc, const char *path, struct ml_err *e)
{
	if (rc > 0 && rc < 4096) /* a plain errno: the file could not be read */
		return ml_err_set(e, -(int)rc, "open %s: %s", path, strerror((int)rc));
	/* too short to hold a superblock at all */
	if (rc == EXT2_ET_BAD_MAGIC || rc == EXT2_ET_SHORT_READ)
		return ml_err_set(e, -EINVAL, "%s is not an ext4 filesystem (%s)", path, ext4_strerror(rc));
	if (rc == EXT2_ET_UNSUPP_FEATURE || rc == EXT2_ET_RO_UNSUPP_FEATURE)
		return ml_err_set(e, -EINVAL, "%s uses ext4 features this version cannot check (%s)", path,
				  ext4_strerror(rc));
	return ml_err_set(e, -EINVAL, "%s is a corrupt ext4 filesystem (%s)", path, ext4_strerror(rc));
}

static int check_geometry(ext2_filsys fs, const char *path, struct ext4_probe_info *info,
			  struct ml_err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return ml_err_set(e, -errno, "stat %s: %m", path);
	info->block_size = fs->blocksize;
	info->fs_bytes = ext2fs_blocks_count(fs->super) * (uint64_t)fs->blocksize;
	/* the guest kernel refuses such a filesystem at mount; say why here instead */
	if (info->fs_bytes > (uint64_t)st.st_size)
		return ml_err_set(e, -EINVAL, "%s is a corrupt ext4 filesystem (it claims %llu bytes, the "
				  "file has %llu: truncated?)", path, (unsigned long long)info->fs_bytes,
				  (unsigned long long)st.st_size);
	errcode_t rc = ext2fs_check_desc(fs);
	if (rc)
		return ml_err_set(e, -EINVAL, "%s is a corrupt ext4 filesystem (%s)", path, ext4_strerror(rc));
	return 0;
}

int ext4_probe(const char *path, struct ext4_probe_info *info, struct ml_err *e)
{
	memset(info, 0, sizeof(*info));
	ext2_filsys fs = NULL;
	errcode_t rc = ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	if (rc)
		return open_error(rc, path, e);
	int r = check_geometry(fs, path, info, e);
	if (r == 0) {
		info->has_journal = ext2fs_has_feature_journal(fs->super);
		info->needs_recovery = ext2fs_has_feature_journal_needs_recovery(fs->super);
		info->had_errors = (fs->super->s_state & EXT2_ERROR_FS) != 0;
	}
	ext2fs_close_free(&fs);
	return r;
}
