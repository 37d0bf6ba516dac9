/* ext4/dir.c - directory entries: link and unlink in time that does not grow with the
 * directory.
 *
 * libext2fs (1.47) adds a name to a plain directory by scanning every block for room, and
 * removes one the same way, so a layer with N entries in one directory costs N^2/2 block
 * scans (1M entries: hours). An indexed (htree) directory costs a hash and a walk of at most
 * three blocks. So a directory stays plain while its first block has room (most do) and is
 * turned into an htree directory when that block is full; ext2fs_link() then inserts through
 * the index (splitting leaves and growing the tree itself), and removal here walks the same
 * index to the one leaf that holds the name. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

#define DX_ROOT_INFO_OFF 24 /* after the "." (12) and ".." (12) entries of block 0 */
#define DX_ROOT_LIMIT_OFF 32

static int ftype_of(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return EXT2_FT_REG_FILE;
	case S_IFDIR: return EXT2_FT_DIR;
	case S_IFLNK: return EXT2_FT_SYMLINK;
	case S_IFCHR: return EXT2_FT_CHRDEV;
	case S_IFBLK: return EXT2_FT_BLKDEV;
	case S_IFIFO: return EXT2_FT_FIFO;
	case S_IFSOCK: return EXT2_FT_SOCK;
	}
	return EXT2_FT_UNKNOWN;
}

static struct ext2_dir_entry *dirent_at(void *block, unsigned off)
{
	return (struct ext2_dir_entry *)((char *)block + off);
}

/* Copies every named entry of a full plain block 0 except "." and ".." into leaf, packed,
 * the last one stretched to the end of the block. */
static errcode_t fill_first_leaf(ext2_filsys fs, void *block0, void *leaf)
{
	unsigned bs = fs->blocksize, rec = 0, out = 0, last = 0;
	memset(leaf, 0, bs);
	for (unsigned off = 0, idx = 0; off < bs; off += rec, idx++) {
		struct ext2_dir_entry *de = dirent_at(block0, off);
		errcode_t rc = ext2fs_get_rec_len(fs, de, &rec);
		if (rc)
			return rc;
		if (rec < 8 || off + rec > bs)
			return EXT2_ET_DIR_CORRUPTED;
		if (idx < 2 || de->inode == 0)
			continue; /* "." and ".." stay in the root block */
		unsigned need = EXT2_DIR_REC_LEN(ext2fs_dirent_name_len(de));
		memcpy((char *)leaf + out, de, need);
		if ((rc = ext2fs_set_rec_len(fs, need, dirent_at(leaf, out))))
			return rc;
		last = out;
		out += need;
	}
	if (out == 0) /* cannot happen for a full block; keep the leaf valid anyway */
		return ext2fs_set_rec_len(fs, bs, dirent_at(leaf, 0));
	return ext2fs_set_rec_len(fs, bs - last, dirent_at(leaf, last));
}

/* Rewrites block 0 as the htree root: ".", ".." spanning the block, the root info and one
 * index entry pointing at leaf block 1 (the first index entry covers every hash). */
static errcode_t fill_root(ext2_filsys fs, void *block0)
{
	unsigned bs = fs->blocksize;
	uint32_t self = dirent_at(block0, 0)->inode, parent = dirent_at(block0, 12)->inode;
	memset(block0, 0, bs);
	struct ext2_dir_entry *d = dirent_at(block0, 0);
	d->inode = self;
	ext2fs_dirent_set_name_len(d, 1);
	ext2fs_dirent_set_file_type(d, EXT2_FT_DIR);
	d->name[0] = '.';
	errcode_t rc = ext2fs_set_rec_len(fs, 12, d);
	d = dirent_at(block0, 12);
	d->inode = parent;
	ext2fs_dirent_set_name_len(d, 2);
	ext2fs_dirent_set_file_type(d, EXT2_FT_DIR);
	memcpy(d->name, "..", 2);
	if (!rc)
		rc = ext2fs_set_rec_len(fs, bs - 12, d);
	struct ext2_dx_root_info *info = (void *)((char *)block0 + DX_ROOT_INFO_OFF);
	info->hash_version = fs->super->s_def_hash_version;
	info->info_length = 8;
	struct ext2_dx_countlimit *cl = (void *)((char *)block0 + DX_ROOT_LIMIT_OFF);
	cl->limit = ext2fs_cpu_to_le16((uint16_t)((bs - DX_ROOT_LIMIT_OFF) / sizeof(struct ext2_dx_entry)));
	cl->count = ext2fs_cpu_to_le16(1);
	struct ext2_dx_entry *first = (void *)cl;
	first->block = ext2fs_cpu_to_le32(1);
	return rc;
}

/* Turns a plain one-block directory whose block is full into an indexed one. */
static errcode_t dir_make_indexed(ext2_filsys fs, ext2_ino_t dir)
{
	struct ext2_inode in;
	errcode_t rc = ext2fs_read_inode(fs, dir, &in);
	if (rc)
		return rc;
	if ((in.i_flags & EXT2_INDEX_FL) || EXT2_I_SIZE(&in) != fs->blocksize ||
	    ext2fs_has_feature_metadata_csum(fs->super))
		return ext2fs_expand_dir(fs, dir); /* not a shape we index: grow it plainly */
	_cleanup_free_ void *b0 = malloc(fs->blocksize);
	_cleanup_free_ void *leaf = malloc(fs->blocksize);
	if (!b0 || !leaf)
		return EXT2_ET_NO_MEMORY;
	blk64_t p0 = 0, p1 = 0;
	rc = ext2fs_bmap2(fs, dir, &in, NULL, 0, 0, NULL, &p0);
	if (!rc)
		rc = ext2fs_read_dir_block4(fs, p0, b0, 0, dir);
	if (!rc)
		rc = fill_first_leaf(fs, b0, leaf);
	if (!rc)
		rc = fill_root(fs, b0);
	if (!rc)
		rc = ext2fs_inode_size_set(fs, &in, 2 * (ext2_off64_t)fs->blocksize);
	if (!rc)
		rc = ext2fs_fallocate(fs, EXT2_FALLOCATE_FORCE_INIT | EXT2_FALLOCATE_ZERO_BLOCKS, dir,
				      &in, 0, 1, 1);
	if (!rc)
		rc = ext2fs_bmap2(fs, dir, &in, NULL, 0, 1, NULL, &p1);
	if (!rc)
		rc = ext2fs_write_dir_block4(fs, p1, leaf, 0, dir);
	if (!rc)
		rc = ext2fs_write_dir_block4(fs, p0, b0, 0, dir);
	if (!rc) {
		in.i_flags |= EXT2_INDEX_FL;
		rc = ext2fs_write_inode(fs, dir, &in);
	}
	return rc;
}

int dir_link(struct ext4_img *img, uint32_t dir, const char *name, uint32_t ino, uint32_t mode,
	     struct ml_err *e)
{
	errcode_t rc = ext2fs_link(img->fs, dir, name, ino, ftype_of(mode));
	if (rc == EXT2_ET_DIR_NO_SPACE) {
		struct ext2_inode in;
		if (ext2fs_read_inode(img->fs, dir, &in) == 0 && (in.i_flags & EXT2_INDEX_FL))
			return ml_err_set(e, -EFBIG, "link %s: too many entries in one directory "
					  "(its index is full)", name);
		rc = dir_make_indexed(img->fs, dir);
		if (!rc)
			rc = ext2fs_link(img->fs, dir, name, ino, ftype_of(mode));
	}
	if (rc)
		return ext4_errcode(rc, e, "link", name);
	return 0;
}

/* The hash the index sorts name by, as libext2fs and the kernel compute it for this image. */
static errcode_t name_hash(ext2_filsys fs, int version, const char *name, uint32_t *hash)
{
	if (version <= EXT2_HASH_TEA && (fs->super->s_flags & EXT2_FLAGS_UNSIGNED_HASH))
		version += 3;
	ext2_dirhash_t h = 0, minor = 0;
	errcode_t rc = ext2fs_dirhash2(version, name, (int)strlen(name), fs->encoding, 0,
				       fs->super->s_hash_seed, &h, &minor);
	*hash = h;
	return rc;
}

/* From an index block, the logical block of the child whose hash range holds hash. */
static errcode_t index_child(ext2_filsys fs, void *block, uint32_t hash, blk64_t *child)
{
	struct ext2_dx_countlimit *cl;
	int off;
	errcode_t rc = ext2fs_get_dx_countlimit(fs, (struct ext2_dir_entry *)block, &cl, &off);
	if (rc)
		return rc;
	unsigned count = ext2fs_le16_to_cpu(cl->count), limit = ext2fs_le16_to_cpu(cl->limit);
	if (count == 0 || count > limit || off + limit * sizeof(struct ext2_dx_entry) > fs->blocksize)
		return EXT2_ET_DIR_CORRUPTED;
	struct ext2_dx_entry *ent = (struct ext2_dx_entry *)cl;
	unsigned lo = 1, hi = count; /* the answer: the last entry whose hash <= hash (or 0) */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (ext2fs_le32_to_cpu(ent[mid].hash) > hash)
			hi = mid;
		else
			lo = mid + 1;
	}
	*child = ext2fs_le32_to_cpu(ent[lo - 1].block) & EXT4_DX_BLOCK_MASK;
	return 0;
}

/* Removes (name, ino) from the one directory block buf if it is there: 1 found, 0 not. */
static int remove_from_block(ext2_filsys fs, void *buf, const char *name, uint32_t ino)
{
	size_t len = strlen(name);
	struct ext2_dir_entry *prev = NULL;
	unsigned rec = 0;
	for (unsigned off = 0; off < fs->blocksize; off += rec) {
		struct ext2_dir_entry *de = dirent_at(buf, off);
		if (ext2fs_get_rec_len(fs, de, &rec) || rec < 8 || off + rec > fs->blocksize)
			return 0;
		if (de->inode == ino && (size_t)ext2fs_dirent_name_len(de) == len &&
		    memcmp(de->name, name, len) == 0) {
			if (prev) {
				unsigned prec;
				ext2fs_get_rec_len(fs, prev, &prec);
				ext2fs_set_rec_len(fs, prec + rec, prev);
			} else {
				de->inode = 0;
			}
			return 1;
		}
		prev = de;
	}
	return 0;
}

/* Walks the index from the root to the leaf for name's hash and removes the entry there. */
static errcode_t dx_unlink(ext2_filsys fs, ext2_ino_t dir, struct ext2_inode *in, const char *name,
			   uint32_t ino, bool *done)
{
	_cleanup_free_ void *buf = malloc(fs->blocksize);
	if (!buf)
		return EXT2_ET_NO_MEMORY;
	blk64_t lblk = 0, pblk = 0;
	errcode_t rc = ext2fs_bmap2(fs, dir, in, NULL, 0, 0, NULL, &pblk);
	if (!rc)
		rc = ext2fs_read_dir_block4(fs, pblk, buf, 0, dir);
	if (rc)
		return rc;
	struct ext2_dx_root_info *info = (void *)((char *)buf + DX_ROOT_INFO_OFF);
	unsigned levels = info->indirect_levels;
	uint32_t hash;
	if (levels >= ext2_dir_htree_level(fs) || (rc = name_hash(fs, info->hash_version, name, &hash)))
		return rc ? rc : EXT2_ET_DIR_CORRUPTED;
	for (unsigned level = 0; level <= levels && !rc; level++) {
		rc = index_child(fs, buf, hash, &lblk);
		if (!rc)
			rc = ext2fs_bmap2(fs, dir, in, NULL, 0, lblk, NULL, &pblk);
		if (!rc)
			rc = ext2fs_read_dir_block4(fs, pblk, buf, 0, dir);
	}
	if (rc)
		return rc;
	*done = remove_from_block(fs, buf, name, ino);
	return *done ? ext2fs_write_dir_block4(fs, pblk, buf, 0, dir) : 0;
}

int dir_unlink(struct ext4_img *img, uint32_t dir, const char *name, uint32_t ino, struct ml_err *e)
{
	struct ext2_inode in;
	bool done = false;
	errcode_t rc = ext2fs_read_inode(img->fs, dir, &in);
	if (!rc && (in.i_flags & EXT2_INDEX_FL))
		rc = dx_unlink(img->fs, dir, &in, name, ino, &done);
	/* A plain directory, or a name whose hash collided across two leaves: scan. */
	if (!rc && !done)
		rc = ext2fs_unlink(img->fs, dir, name, ino, 0);
	return rc ? ext4_errcode(rc, e, "unlink", name) : 0;
}
