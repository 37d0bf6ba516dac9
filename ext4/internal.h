/* ext4/internal.h - shared between the ext4/ files only: the image handle, the in-memory
 * directory tree (path -> inode without scanning directories on disk) and libext2fs glue. */
#ifndef ML_EXT4_INTERNAL_H
#define ML_EXT4_INTERNAL_H

#include <ext2fs/ext2fs.h>
#include <stdint.h>

#include "base/err.h"
#include "ext4/ext4.h"

#define EXT4_NAME_MAX 255
#define EXT4_PATH_MAX 4096

/* One directory entry of the image. Hard links are several nodes with the same ino. */
struct ext4_node {
	struct ext4_node *parent, *first_child, *prev_sib, *next_sib;
	struct ext4_node *hnext;     /* hash chain */
	uint32_t ino;
	uint32_t mode;               /* S_IF* type and permission bits */
	uint32_t gen;                /* generation that created it */
	uint32_t touched;            /* latest generation that wrote it or anything below it */
	uint16_t name_len;
	char name[];
};

struct ext4_tree {
	struct ext4_node **buckets;
	size_t nbuckets, count;
	struct ext4_node *root;
};

struct ext4_img {
	ext2_filsys fs;
	int fd;                      /* the image file, for the final fsync */
	struct ext4_tree tree;
	uint32_t gen;
	char *path;
};

/* tree.c */
int tree_init(struct ext4_tree *t, uint32_t root_ino);
void tree_free(struct ext4_tree *t);
struct ext4_node *tree_child(const struct ext4_tree *t, const struct ext4_node *parent,
			     const char *name, size_t len);
struct ext4_node *tree_insert(struct ext4_tree *t, struct ext4_node *parent, const char *name,
			      size_t len, uint32_t ino, uint32_t mode, uint32_t gen);
/* Unhooks a node that has no children and frees it. */
void tree_drop(struct ext4_tree *t, struct ext4_node *n);
/* Marks n and its ancestors as written in generation gen. */
void tree_touch(struct ext4_node *n, uint32_t gen);

/* path.c: the normalized components of an untrusted path. */
struct ext4_path {
	char *buf;
	const char **comp;
	size_t n;
};
int path_parse(const char *path, struct ext4_path *out, struct ml_err *e);
void path_free(struct ext4_path *p);
/* Walks all but the last component; with create, makes missing directories. Refuses
 * symlinks and non-directories on the way. */
int path_parent(struct ext4_img *img, const struct ext4_path *p, bool create,
		struct ext4_node **parent, struct ml_err *e);
/* Walks the whole path (root for an empty one). */
int path_node(struct ext4_img *img, const char *path, struct ext4_node **out, struct ml_err *e);

/* inode.c */
/* libext2fs's message for rc. */
const char *ext4_strerror(errcode_t rc);
int ext4_errcode(errcode_t rc, struct ml_err *e, const char *what, const char *path);
int inode_write_meta(struct ext4_img *img, uint32_t ino, const struct ext4_entry *ent,
		     bool fresh, struct ml_err *e);
int inode_set_xattrs(struct ext4_img *img, uint32_t ino, const struct ext4_entry *ent,
		     struct ml_err *e);
int inode_make_dir(struct ext4_img *img, struct ext4_node *parent, const char *name,
		   const struct ext4_entry *ent, struct ext4_node **out, struct ml_err *e);

/* dir.c: directory entries. A directory stays plain while one block holds it and becomes an
 * indexed (htree) one when that block is full, so neither call scans the whole directory. */
int dir_link(struct ext4_img *img, uint32_t dir, const char *name, uint32_t ino, uint32_t mode,
	     struct ml_err *e);
int dir_unlink(struct ext4_img *img, uint32_t dir, const char *name, uint32_t ino, struct ml_err *e);

/* remove.c */
int node_remove(struct ext4_img *img, struct ext4_node *n, struct ml_err *e);

/* data.c */
int inode_write_data(struct ext4_img *img, uint32_t ino, const struct ext4_entry *ent,
		     struct ml_err *e);

#endif
