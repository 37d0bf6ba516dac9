/* ext4/inode.c - inode metadata, xattrs and directory links on top of libext2fs. */
#include <errno.h>
#include <et/com_err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

const char *ext4_strerror(errcode_t rc)
{
	/* libext2fs's messages live in a com_err table that is empty until registered */
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, initialize_ext2_error_table);
	return error_message(rc);
}

int ext4_errcode(errcode_t rc, struct ml_err *e, const char *what, const char *path)
{
	(void)path; /* callers prefix the entry's path */
	if (rc == EXT2_ET_BLOCK_ALLOC_FAIL || rc == EXT2_ET_INODE_ALLOC_FAIL ||
	    rc == EXT2_ET_DIR_NO_SPACE || rc == ENOSPC)
		return ml_err_set(e, -ENOSPC, "%s: image is full", what);
	if (rc == ENOMEM || rc == EXT2_ET_NO_MEMORY)
		return ml_err_set(e, -ENOMEM, "%s: out of memory", what);
	return ml_err_set(e, -EIO, "%s: %s", what, ext4_strerror(rc));
}

static uint32_t clamp_time(int64_t t)
{
	if (t < INT32_MIN)
		return (uint32_t)INT32_MIN;
	if (t > INT32_MAX)
		return (uint32_t)INT32_MAX;
	return (uint32_t)(int32_t)t;
}

/* Writes owner, permission bits and times of ent over inode ino (its type stays). */
int inode_write_meta(struct ext4_img *img, uint32_t ino, const struct ext4_entry *ent,
		     bool fresh, struct ml_err *e)
{
	size_t isz = EXT2_INODE_SIZE(img->fs->super);
	_cleanup_free_ struct ext2_inode_large *in = calloc(1, isz);
	if (!in)
		return ml_err_set(e, -ENOMEM, "out of memory");
	errcode_t rc = 0;
	if (!fresh)
		rc = ext2fs_read_inode_full(img->fs, ino, (struct ext2_inode *)in, (int)isz);
	if (rc)
		return ext4_errcode(rc, e, "read inode of", ent->path ? ent->path : "");
	if (fresh) {
		in->i_mode = (uint16_t)(ent->mode & 0170000);
		in->i_links_count = 1;
		if (isz > EXT2_GOOD_OLD_INODE_SIZE)
			in->i_extra_isize = sizeof(*in) - EXT2_GOOD_OLD_INODE_SIZE;
	}
	in->i_mode = (uint16_t)((in->i_mode & 0170000) | (ent->mode & 07777));
	in->i_uid = (uint16_t)ent->uid;
	in->osd2.linux2.l_i_uid_high = (uint16_t)(ent->uid >> 16);
	in->i_gid = (uint16_t)ent->gid;
	in->osd2.linux2.l_i_gid_high = (uint16_t)(ent->gid >> 16);
	in->i_atime = clamp_time(ent->atime);
	in->i_mtime = clamp_time(ent->mtime);
	in->i_ctime = clamp_time(ent->ctime);
	if (isz > EXT2_GOOD_OLD_INODE_SIZE)
		in->i_crtime = in->i_mtime;
	rc = ext2fs_write_inode_full(img->fs, ino, (struct ext2_inode *)in, (int)isz);
	if (rc)
		return ext4_errcode(rc, e, "write inode of", ent->path ? ent->path : "");
	return 0;
}

int inode_set_xattrs(struct ext4_img *img, uint32_t ino, const struct ext4_entry *ent,
		     struct ml_err *e)
{
	if (ent->n_xattrs == 0)
		return 0;
	struct ext2_xattr_handle *h = NULL;
	errcode_t rc = ext2fs_xattrs_open(img->fs, ino, &h);
	if (!rc)
		rc = ext2fs_xattrs_read(h);
	for (size_t i = 0; !rc && i < ent->n_xattrs; i++) {
		const struct ext4_xattr *x = &ent->xattrs[i];
		if (!x->name || !*x->name || strlen(x->name) > 255 || x->len > 65536) {
			ext2fs_xattrs_close(&h);
			return ml_err_set(e, -EINVAL, "bad xattr");
		}
		rc = ext2fs_xattr_set(h, x->name, x->value, x->len);
	}
	errcode_t rc2 = h ? ext2fs_xattrs_close(&h) : 0;
	if (rc || rc2)
		return ext4_errcode(rc ? rc : rc2, e, "set xattrs of", ent->path);
	return 0;
}

/* ext2fs_mkdir counts the new ".." in the parent's 16-bit link count without a cap. Past
 * EXT2_LINK_MAX subdirectories the count becomes 1, which ext4 (dir_nlink) reads as "many",
 * and stays 1; without this, 65536 subdirectories wrap it to 0, a deleted directory. */
static errcode_t cap_parent_links(ext2_filsys fs, uint32_t dir, uint16_t before)
{
	struct ext2_inode in;
	errcode_t rc = ext2fs_read_inode(fs, dir, &in);
	if (rc || (before != 1 && before < EXT2_LINK_MAX - 1))
		return rc;
	in.i_links_count = 1;
	return ext2fs_write_inode(fs, dir, &in);
}

int inode_make_dir(struct ext4_img *img, struct ext4_node *parent, const char *name,
		   const struct ext4_entry *ent, struct ext4_node **out, struct ml_err *e)
{
	ext2_ino_t ino;
	struct ext2_inode pin;
	errcode_t rc = ext2fs_read_inode(img->fs, parent->ino, &pin);
	if (!rc)
		rc = ext2fs_new_inode(img->fs, parent->ino, LINUX_S_IFDIR | 0755, NULL, &ino);
	if (!rc)
		rc = ext2fs_mkdir(img->fs, parent->ino, ino, NULL);
	if (!rc)
		rc = cap_parent_links(img->fs, parent->ino, pin.i_links_count);
	if (rc)
		return ext4_errcode(rc, e, "mkdir", name);
	int r = dir_link(img, parent->ino, name, ino, S_IFDIR, e);
	if (r == 0)
		r = inode_write_meta(img, ino, ent, false, e);
	if (r == 0)
		r = inode_set_xattrs(img, ino, ent, e);
	if (r < 0)
		return r;
	*out = tree_insert(&img->tree, parent, name, strlen(name), ino,
			   S_IFDIR | (ent->mode & 07777), img->gen);
	if (!*out)
		return ml_err_set(e, -ENOMEM, "out of memory");
	return 0;
}
