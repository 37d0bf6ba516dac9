/* ext4/add.c - adding entries: directories, files, symlinks, devices, fifos, sockets, hard
 * links. Replacement follows layer semantics: a later entry wins, directories merge. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

/* The inode of a file, device, fifo or socket, type and device number in place; owner,
 * permissions and times come after from inode_write_meta. */
static int make_plain_inode(struct ext4_img *img, uint32_t parent, const struct ext4_entry *ent,
			    uint32_t *out, struct ml_err *e)
{
	ext2_ino_t ino;
	errcode_t rc = ext2fs_new_inode(img->fs, parent, (int)(ent->mode & 0170777), NULL, &ino);
	if (rc)
		return ext4_errcode(rc, e, "create", ent->path);
	size_t isz = EXT2_INODE_SIZE(img->fs->super);
	_cleanup_free_ struct ext2_inode_large *in = calloc(1, isz);
	if (!in)
		return ml_err_set(e, -ENOMEM, "out of memory");
	in->i_mode = (uint16_t)(ent->mode & 0170000);
	in->i_links_count = 1;
	in->i_extra_isize = sizeof(*in) - EXT2_GOOD_OLD_INODE_SIZE;
	uint32_t ma = ent->rdev_major, mi = ent->rdev_minor;
	if (S_ISCHR(ent->mode) || S_ISBLK(ent->mode)) {
		if (ma < 256 && mi < 256)
			in->i_block[0] = ma * 256 + mi;
		else
			in->i_block[1] = (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
	} else if (S_ISREG(ent->mode) && ext2fs_has_feature_extents(img->fs->super)) {
		/* extent_open2 on an inode without blocks lays down an empty extent header. */
		ext2_extent_handle_t h;
		rc = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
		if (rc)
			return ext4_errcode(rc, e, "create", ent->path);
		ext2fs_extent_free(h);
	}
	rc = ext2fs_write_inode_full(img->fs, ino, (struct ext2_inode *)in, (int)isz);
	if (rc)
		return ext4_errcode(rc, e, "create", ent->path);
	ext2fs_inode_alloc_stats2(img->fs, ino, +1, 0);
	*out = ino;
	return 0;
}

static int make_symlink(struct ext4_img *img, uint32_t parent, const struct ext4_entry *ent,
			uint32_t *out, struct ml_err *e)
{
	const char *t = ent->symlink_target;
	if (!t || !*t)
		return ml_err_set(e, -EINVAL, "empty symlink target");
	if (strlen(t) >= img->fs->blocksize)
		return ml_err_set(e, -ENAMETOOLONG, "symlink target too long");
	ext2_ino_t ino;
	errcode_t rc = ext2fs_new_inode(img->fs, parent, LINUX_S_IFLNK | 0777, NULL, &ino);
	if (!rc)
		rc = ext2fs_symlink(img->fs, parent, ino, NULL, t);
	if (rc)
		return ext4_errcode(rc, e, "symlink", ent->path);
	*out = ino;
	return 0;
}

static int add_new(struct ext4_img *img, struct ext4_node *parent, const char *name,
		   const struct ext4_entry *ent, struct ml_err *e)
{
	uint32_t type = ent->mode & S_IFMT, ino = 0;
	int r;
	if (type == S_IFDIR) {
		struct ext4_node *n;
		return inode_make_dir(img, parent, name, ent, &n, e);
	}
	if (type == S_IFLNK)
		r = make_symlink(img, parent->ino, ent, &ino, e);
	else if (type == S_IFREG || type == S_IFCHR || type == S_IFBLK || type == S_IFIFO ||
		 type == S_IFSOCK)
		r = make_plain_inode(img, parent->ino, ent, &ino, e);
	else
		r = ml_err_set(e, -EINVAL, "unsupported file type 0%o", type);
	if (r == 0)
		r = dir_link(img, parent->ino, name, ino, type, e);
	if (r == 0)
		r = inode_write_meta(img, ino, ent, false, e);
	if (r == 0 && type == S_IFREG)
		r = inode_write_data(img, ino, ent, e);
	if (r == 0)
		r = inode_set_xattrs(img, ino, ent, e);
	if (r < 0)
		return r;
	if (!tree_insert(&img->tree, parent, name, strlen(name), ino, type | (ent->mode & 07777), img->gen))
		return ml_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static int update_dir(struct ext4_img *img, struct ext4_node *n, const struct ext4_entry *ent,
		      struct ml_err *e)
{
	int r = inode_write_meta(img, n->ino, ent, false, e);
	if (r == 0)
		r = inode_set_xattrs(img, n->ino, ent, e);
	n->mode = S_IFDIR | (ent->mode & 07777);
	tree_touch(n, img->gen);
	return r;
}

int ext4_add(struct ext4_img *img, const struct ext4_entry *ent, struct ml_err *e)
{
	struct ext4_path p;
	int r = path_parse(ent->path, &p, e);
	if (r < 0)
		return r;
	struct ext4_node *parent = NULL, *old = NULL;
	bool is_dir = S_ISDIR(ent->mode);
	if (p.n == 0) {
		r = is_dir ? update_dir(img, img->tree.root, ent, e)
			   : ml_err_set(e, -EINVAL, "cannot replace the image root");
		path_free(&p);
		return r;
	}
	const char *name = p.comp[p.n - 1];
	r = path_parent(img, &p, true, &parent, e);
	if (r == 0)
		old = tree_child(&img->tree, parent, name, strlen(name));
	if (r == 0 && old && is_dir && S_ISDIR(old->mode))
		r = update_dir(img, old, ent, e);
	else if (r == 0) {
		if (old)
			r = node_remove(img, old, e);
		if (r == 0)
			r = add_new(img, parent, name, ent, e);
	}
	path_free(&p);
	return r;
}

int ext4_add_hardlink(struct ext4_img *img, const char *path, const char *target, struct ml_err *e)
{
	struct ext4_path p;
	int r = path_parse(path, &p, e);
	if (r < 0)
		return r;
	struct ext4_node *parent = NULL, *old = NULL, *tn = NULL;
	const char *name = p.n ? p.comp[p.n - 1] : "";
	if (p.n == 0)
		r = ml_err_set(e, -EINVAL, "cannot replace the image root");
	if (r == 0)
		r = path_parent(img, &p, true, &parent, e);
	if (r == 0)
		old = tree_child(&img->tree, parent, name, strlen(name));
	if (r == 0) {
		struct ml_err te = {0};
		int tr = path_node(img, target, &tn, &te);
		if (tr == 0 && tn == old)
			goto out; /* a link to itself: already there */
		if (old)
			r = node_remove(img, old, e);
		if (r == 0 && path_node(img, target, &tn, &te) < 0)
			r = ml_err_set(e, -ENOENT, "hard link target \"%s\": %s", target, te.msg);
		else if (r == 0 && S_ISDIR(tn->mode))
			r = ml_err_set(e, -EPERM, "hard link to a directory");
	}
	struct ext2_inode in;
	errcode_t rc = 0;
	if (r == 0)
		rc = ext2fs_read_inode(img->fs, tn->ino, &in);
	if (r == 0 && !rc && in.i_links_count >= 65000)
		r = ml_err_set(e, -EMLINK, "too many links");
	if (r == 0 && !rc)
		r = dir_link(img, parent->ino, name, tn->ino, tn->mode, e);
	if (r == 0 && !rc) {
		in.i_links_count++;
		rc = ext2fs_write_inode(img->fs, tn->ino, &in);
	}
	if (r == 0 && rc)
		r = ext4_errcode(rc, e, "link", path);
	if (r == 0 && !tree_insert(&img->tree, parent, name, strlen(name), tn->ino, tn->mode, img->gen))
		r = ml_err_set(e, -ENOMEM, "out of memory");
out:
	path_free(&p);
	return r;
}

int ext4_lookup(struct ext4_img *img, const char *path, uint32_t *ino, uint32_t *mode, struct ml_err *e)
{
	struct ext4_node *n;
	int r = path_node(img, path, &n, e);
	if (r < 0)
		return r;
	if (ino)
		*ino = n->ino;
	if (mode)
		*mode = n->mode;
	return 0;
}

void ext4_next_generation(struct ext4_img *img)
{
	img->gen++;
}
