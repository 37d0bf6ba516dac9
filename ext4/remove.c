/* ext4/remove.c - removing entries for OCI whiteouts: unlink, drop link counts, and give the
 * blocks, xattr blocks and inodes back so the image's accounting stays fsck-clean. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

static int adjust_dir_links(struct ext4_img *img, uint32_t dir, int delta, struct ml_err *e)
{
	struct ext2_inode in;
	errcode_t rc = ext2fs_read_inode(img->fs, dir, &in);
	if (!rc) {
		if (delta < 0 && in.i_links_count > 2)
			in.i_links_count--;
		rc = ext2fs_write_inode(img->fs, dir, &in);
	}
	return rc ? ext4_errcode(rc, e, "update", "parent directory") : 0;
}

/* Drops one link to ino; the last one frees its data, xattr block and the inode itself. */
static int release_inode(struct ext4_img *img, uint32_t ino, bool is_dir, struct ml_err *e)
{
	size_t isz = EXT2_INODE_SIZE(img->fs->super);
	_cleanup_free_ struct ext2_inode_large *in = calloc(1, isz);
	if (!in)
		return ml_err_set(e, -ENOMEM, "out of memory");
	struct ext2_inode *base = (struct ext2_inode *)in;
	errcode_t rc = ext2fs_read_inode_full(img->fs, ino, base, (int)isz);
	if (rc)
		return ext4_errcode(rc, e, "read inode", "");
	if (!is_dir && in->i_links_count > 1) {
		in->i_links_count--;
		rc = ext2fs_write_inode_full(img->fs, ino, base, (int)isz);
		return rc ? ext4_errcode(rc, e, "write inode", "") : 0;
	}
	in->i_links_count = 0;
	rc = ext2fs_free_ext_attr(img->fs, ino, in);
	uint16_t type = in->i_mode & LINUX_S_IFMT;
	bool has_blocks = type == LINUX_S_IFREG || type == LINUX_S_IFDIR ||
			  (type == LINUX_S_IFLNK && ext2fs_inode_data_blocks2(img->fs, base) > 0);
	if (!rc && has_blocks && ext2fs_inode_has_valid_blocks2(img->fs, base))
		rc = ext2fs_punch(img->fs, ino, base, NULL, 0, ~0ULL);
	if (!rc) {
		in->i_dtime = (uint32_t)time(NULL);
		rc = ext2fs_write_inode_full(img->fs, ino, base, (int)isz);
	}
	if (rc)
		return ext4_errcode(rc, e, "free inode", "");
	ext2fs_inode_alloc_stats2(img->fs, ino, -1, is_dir);
	return 0;
}

/* Frees n and everything below it. Entries inside a directory that goes away need no unlink:
 * their directory blocks are freed with it. */
static int drop_subtree(struct ext4_img *img, struct ext4_node *n, struct ml_err *e)
{
	while (n->first_child) {
		int r = drop_subtree(img, n->first_child, e);
		if (r < 0)
			return r;
	}
	int r = release_inode(img, n->ino, S_ISDIR(n->mode), e);
	if (r == 0)
		tree_drop(&img->tree, n);
	return r;
}

int node_remove(struct ext4_img *img, struct ext4_node *n, struct ml_err *e)
{
	if (n == img->tree.root)
		return ml_err_set(e, -EINVAL, "cannot remove the image root");
	_cleanup_free_ char *name = strndup(n->name, n->name_len);
	if (!name)
		return ml_err_set(e, -ENOMEM, "out of memory");
	uint32_t parent = n->parent->ino;
	int r = dir_unlink(img, parent, name, n->ino, e);
	if (r < 0)
		return r;
	if (S_ISDIR(n->mode)) {
		r = adjust_dir_links(img, parent, -1, e);
		if (r < 0)
			return r;
	}
	tree_touch(n->parent, img->gen);
	return drop_subtree(img, n, e);
}

int ext4_remove(struct ext4_img *img, const char *path, struct ml_err *e)
{
	struct ext4_node *n;
	int r = path_node(img, path, &n, e);
	if (r < 0)
		return r;
	return node_remove(img, n, e);
}

static int clear_older(struct ext4_img *img, struct ext4_node *dir, struct ml_err *e)
{
	struct ext4_node *c = dir->first_child;
	while (c) {
		struct ext4_node *next = c->next_sib;
		int r = 0;
		if (c->gen == img->gen)
			; /* written by this layer: nothing lower can be inside it */
		else if (S_ISDIR(c->mode) && c->touched == img->gen)
			r = clear_older(img, c, e);
		else
			r = node_remove(img, c, e);
		if (r < 0)
			return r;
		c = next;
	}
	return 0;
}

int ext4_clear_dir(struct ext4_img *img, const char *path, struct ml_err *e)
{
	struct ext4_node *n;
	int r = path_node(img, path, &n, e);
	if (r < 0)
		return r;
	if (!S_ISDIR(n->mode))
		return ml_err_set(e, -ENOTDIR, "\"%s\": not a directory", path);
	return clear_older(img, n, e);
}
