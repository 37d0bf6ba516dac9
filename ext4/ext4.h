/* ext4/ext4.h - rootless ext4 image writer on libext2fs: empty scratch disks, and images filled
 * entry by entry (the OCI rootfs builder streams tar layers into it; nothing touches the host
 * filesystem besides the one image file).
 *
 * Paths are image paths from untrusted archives. Rules (see ext4/README.md):
 *  - leading '/', empty and "." components are dropped; ".." removes the previous component;
 *    a ".." above the root is an error ("path escapes the image root"): -EINVAL.
 *  - no path component is longer than 255 bytes; a path is at most 4096 bytes.
 *  - a path is never resolved through a symlink stored in the image: an intermediate component
 *    that is a symlink is an error (-ELOOP), one that is a file/device is -ENOTDIR.
 *  - missing parent directories are created (0755, root:root, mtime 0).
 *  - adding an entry where one exists replaces it (a directory over a directory only updates
 *    its metadata and keeps its contents; anything else removes the old entry and its tree).
 *  - symlink targets are stored as text and never interpreted here. */
#ifndef ML_EXT4_H
#define ML_EXT4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

/* A sparse, empty ext4 file of size_bytes (no journal, lazy inode tables: a 5 GiB one takes
 * milliseconds), written under a temp name next to path and renamed. */
int ext4_make_empty(const char *path, uint64_t size_bytes, struct ml_err *e);

struct ext4_img;

/* Creates a fresh image at path (created or truncated; the caller owns temp naming and the
 * final rename). inodes = 0 picks one inode per 8 KiB. */
int ext4_create(const char *path, uint64_t size_bytes, uint64_t inodes, struct ext4_img **out,
		struct ml_err *e);
/* Flushes the filesystem, fsyncs the file and frees img (also on error). */
int ext4_finish(struct ext4_img *img, struct ml_err *e);
/* Frees img without writing anything more; the caller deletes the file. NULL is fine. */
void ext4_abort(struct ext4_img *img);

/* Reads up to len bytes of file data; returns the count, 0 at the end, or a negative errno
 * (with e set). */
typedef ssize_t (*ext4_read_fn)(void *ctx, void *buf, size_t len, struct ml_err *e);

struct ext4_xattr {
	const char *name;   /* full name, e.g. "security.capability", "user.foo" */
	const void *value;
	size_t len;
};

struct ext4_entry {
	const char *path;
	uint32_t mode;              /* S_IFREG/S_IFDIR/S_IFLNK/S_IFCHR/S_IFBLK/S_IFIFO/S_IFSOCK | 07777 */
	uint32_t uid, gid;
	int64_t atime, mtime, ctime;
	uint32_t rdev_major, rdev_minor;     /* S_IFCHR, S_IFBLK */
	const char *symlink_target;          /* S_IFLNK: stored as is */
	ext4_read_fn read;                   /* S_IFREG: data source (NULL = empty file) */
	void *read_ctx;
	const struct ext4_xattr *xattrs;
	size_t n_xattrs;
};

/* Adds (or replaces, see the rules above) one entry. Zero blocks of file data become holes. */
int ext4_add(struct ext4_img *img, const struct ext4_entry *ent, struct ml_err *e);

/* Adds path as a hard link to target, which must already be in the image and not be a
 * directory (-ENOENT / -EPERM otherwise). */
int ext4_add_hardlink(struct ext4_img *img, const char *path, const char *target, struct ml_err *e);

/* Removes path and, for a directory, everything below it. -ENOENT if absent. */
int ext4_remove(struct ext4_img *img, const char *path, struct ml_err *e);

/* Entries remember the "generation" they were written in; layers call this between layers. */
void ext4_next_generation(struct ext4_img *img);
/* Opaque directory: removes everything under path that was not written in the current
 * generation (directories re-declared in this generation keep only this generation's content).
 * -ENOENT if path is absent, -ENOTDIR if it is not a directory. */
int ext4_clear_dir(struct ext4_img *img, const char *path, struct ml_err *e);

/* Looks path up in the in-memory map (no disk scan, no symlink following). 0 and *ino, *mode
 * set, or -ENOENT/-ELOOP/-ENOTDIR/-EINVAL. */
int ext4_lookup(struct ext4_img *img, const char *path, uint32_t *ino, uint32_t *mode, struct ml_err *e);

/* Bytes of data and inode capacity left, for callers that size images. */
void ext4_free_space(struct ext4_img *img, uint64_t *free_bytes, uint64_t *free_inodes);

/* Gives a new image a journal sized as mke2fs would (none under 8 MiB, where it cannot fit), for
 * images that outlive a VM: a guest killed mid-write leaves what the next mount replays. Call
 * between ext4_create and ext4_finish. */
int ext4_add_journal(struct ext4_img *img, struct ml_err *e);

/* ---- checking an existing image (read-only: nothing is written to the file) ---- */
struct ext4_probe_info {
	uint64_t fs_bytes;      /* the filesystem's size (<= the file's) */
	uint32_t block_size;
	bool has_journal;
	bool needs_recovery;    /* its journal holds writes not yet applied (last user did not unmount) */
	bool had_errors;        /* the kernel recorded errors in it */
};
/* 0 when path holds an ext2/3/4 filesystem that libext2fs opens, whose group descriptors are
 * sane and that fits its file. Else -EINVAL with one line: "<path> is not an ext4 filesystem
 * (...)" or "<path> is a corrupt ext4 filesystem (...)"; other errors as -errno. */
int ext4_probe(const char *path, struct ext4_probe_info *info, struct ml_err *e);

#endif
