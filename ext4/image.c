/* ext4/image.c - creating, finishing and sizing images. The file is new and sparse, so every
 * block we never write reads as zeros: inode tables need no zeroing pass (that is what makes a
 * 5 GiB scratch disk take milliseconds) and are marked zeroed for the kernel. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

#define BLOCK_SIZE 4096u
#define MIN_IMAGE (1u << 20)

static void fill_params(struct ext2_super_block *p, uint64_t size, uint64_t inodes)
{
	memset(p, 0, sizeof(*p));
	p->s_rev_level = EXT2_DYNAMIC_REV;
	p->s_log_block_size = 2; /* 4 KiB */
	ext2fs_blocks_count_set(p, size / BLOCK_SIZE);
	p->s_inodes_count = (uint32_t)inodes;
	p->s_inode_size = 256;
	p->s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
	p->s_log_groups_per_flex = 4;
	p->s_feature_compat = EXT2_FEATURE_COMPAT_EXT_ATTR | EXT2_FEATURE_COMPAT_DIR_INDEX;
	p->s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS |
				EXT4_FEATURE_INCOMPAT_64BIT | EXT4_FEATURE_INCOMPAT_FLEX_BG;
	p->s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER |
				 EXT2_FEATURE_RO_COMPAT_LARGE_FILE | EXT4_FEATURE_RO_COMPAT_HUGE_FILE |
				 EXT4_FEATURE_RO_COMPAT_DIR_NLINK | EXT4_FEATURE_RO_COMPAT_GDT_CSUM |
				 EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE;
}

/* Inodes 1..first_ino-1 are reserved; the bad-block inode must exist and be empty. */
static errcode_t reserve_inodes(ext2_filsys fs)
{
	for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
		ext2fs_inode_alloc_stats2(fs, i, +1, 0);
	ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
	ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
	return ext2fs_update_bb_inode(fs, NULL);
}

static errcode_t format(ext2_filsys fs)
{
	uint8_t rnd[32] = {0};
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return errno ? (errcode_t)errno : EIO;
	memcpy(fs->super->s_uuid, rnd, 16);
	memcpy(fs->super->s_hash_seed, rnd + 16, 16);
	fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
	/* Said explicitly, as mke2fs does: a kernel finding neither flag picks by its own char
	 * signedness, and the hashes of names with bytes >= 0x80 would then not match the index. */
	fs->super->s_flags |= EXT2_FLAGS_SIGNED_HASH;
	fs->super->s_max_mnt_count = -1;
	ext2fs_r_blocks_count_set(fs->super, 0);
	errcode_t rc = ext2fs_allocate_tables(fs);
	for (dgrp_t g = 0; !rc && g < fs->group_desc_count; g++)
		ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
	if (!rc)
		rc = ext2fs_convert_subcluster_bitmap(fs, &fs->block_map);
	if (!rc)
		rc = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, NULL);
	if (!rc)
		rc = reserve_inodes(fs);
	if (!rc)
		rc = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found");
	return rc;
}

int ext4_create(const char *path, uint64_t size_bytes, uint64_t inodes, struct ext4_img **out,
		struct ml_err *e)
{
	if (size_bytes < MIN_IMAGE)
		size_bytes = MIN_IMAGE;
	size_bytes &= ~(uint64_t)(BLOCK_SIZE - 1);
	if (size_bytes > (16ULL << 40))
		return ml_err_set(e, -EFBIG, "image size too large");
	if (inodes == 0)
		inodes = size_bytes / 8192;
	if (inodes < 1024)
		inodes = 1024;
	if (inodes > (uint64_t)UINT32_MAX / 2)
		inodes = UINT32_MAX / 2;
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ml_err_set(e, -errno, "create %s: %m", path);
	if (ftruncate(fd, (off_t)size_bytes) < 0)
		return ml_err_set(e, -errno, "size %s: %m", path);
	struct ext2_super_block param;
	fill_params(&param, size_bytes, inodes);
	ext2_filsys fs = NULL;
	errcode_t rc = ext2fs_initialize(path, EXT2_FLAG_RW | EXT2_FLAG_64BITS, &param,
					 unix_io_manager, &fs);
	if (!rc)
		rc = format(fs);
	if (rc) {
		if (fs)
			ext2fs_free(fs);
		return ext4_errcode(rc, e, "format", path);
	}
	struct ext4_img *img = calloc(1, sizeof(*img));
	if (!img || !(img->path = strdup(path)) || tree_init(&img->tree, EXT2_ROOT_INO) < 0) {
		ext2fs_free(fs);
		if (img)
			free(img->path);
		free(img);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	img->fs = fs;
	img->fd = steal_fd(&fd);
	img->gen = 1;
	/* lost+found is in the image already; map it so layers can merge into it. */
	ext2_ino_t lf;
	if (ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", 10, NULL, &lf) == 0)
		tree_insert(&img->tree, img->tree.root, "lost+found", 10, lf, S_IFDIR | 0700, 0);
	*out = img;
	return 0;
}

static void img_free(struct ext4_img *img)
{
	tree_free(&img->tree);
	if (img->fd >= 0)
		close(img->fd);
	free(img->path);
	free(img);
}

int ext4_finish(struct ext4_img *img, struct ml_err *e)
{
	errcode_t rc = ext2fs_set_gdt_csum(img->fs);
	errcode_t rc2 = ext2fs_close2(img->fs, 0);
	if (rc2)
		ext2fs_free(img->fs);
	img->fs = NULL;
	int r = 0;
	if (rc || rc2)
		r = ext4_errcode(rc ? rc : rc2, e, "write", img->path);
	else if (fsync(img->fd) < 0)
		r = ml_err_set(e, -errno, "fsync %s: %m", img->path);
	img_free(img);
	return r;
}

void ext4_abort(struct ext4_img *img)
{
	if (!img)
		return;
	if (img->fs)
		ext2fs_free(img->fs);
	img_free(img);
}

void ext4_free_space(struct ext4_img *img, uint64_t *free_bytes, uint64_t *free_inodes)
{
	if (free_bytes)
		*free_bytes = ext2fs_free_blocks_count(img->fs->super) * img->fs->blocksize;
	if (free_inodes)
		*free_inodes = img->fs->super->s_free_inodes_count;
}

int ext4_make_empty(const char *path, uint64_t size_bytes, struct ml_err *e)
{
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	/* A scratch disk holds what the guest writes: the usual 16 KiB per inode. */
	struct ext4_img *img;
	int r = ext4_create(tmp, size_bytes, size_bytes / 16384, &img, e);
	if (r == 0)
		r = ext4_finish(img, e);
	if (r == 0 && rename(tmp, path) < 0)
		r = ml_err_set(e, -errno, "rename %s: %m", path);
	if (r < 0)
		unlink(tmp);
	return r;
}
