/* ext4/tree.c - the image's directory tree in memory. libext2fs looks names up by scanning
 * directory blocks; a layer with thousands of files per directory would make every add
 * quadratic, so every lookup goes through this hash of (parent, name) instead. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ext4/internal.h"

static size_t name_hash(const struct ext4_node *parent, const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)parent;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h ^ (h >> 29));
}

int tree_init(struct ext4_tree *t, uint32_t root_ino)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	t->root = calloc(1, sizeof(*t->root));
	if (!t->buckets || !t->root) {
		tree_free(t);
		return -ENOMEM;
	}
	t->root->ino = root_ino;
	t->root->mode = 040755;
	return 0;
}

static void free_subtree(struct ext4_node *n)
{
	while (n) {
		struct ext4_node *next = n->next_sib;
		free_subtree(n->first_child);
		free(n);
		n = next;
	}
}

void tree_free(struct ext4_tree *t)
{
	if (t->root)
		free_subtree(t->root->first_child);
	free(t->root);
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

struct ext4_node *tree_child(const struct ext4_tree *t, const struct ext4_node *parent,
			     const char *name, size_t len)
{
	struct ext4_node *n = t->buckets[name_hash(parent, name, len) & (t->nbuckets - 1)];
	for (; n; n = n->hnext)
		if (n->parent == parent && n->name_len == len && memcmp(n->name, name, len) == 0)
			return n;
	return NULL;
}

static void grow(struct ext4_tree *t)
{
	size_t nb = t->nbuckets * 2;
	struct ext4_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the old table: slower chains, still correct */
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct ext4_node *n = t->buckets[i];
		while (n) {
			struct ext4_node *next = n->hnext;
			size_t h = name_hash(n->parent, n->name, n->name_len) & (nb - 1);
			n->hnext = b[h];
			b[h] = n;
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

struct ext4_node *tree_insert(struct ext4_tree *t, struct ext4_node *parent, const char *name,
			      size_t len, uint32_t ino, uint32_t mode, uint32_t gen)
{
	struct ext4_node *n = calloc(1, sizeof(*n) + len + 1);
	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->name_len = (uint16_t)len;
	n->ino = ino;
	n->mode = mode;
	n->gen = n->touched = gen;
	n->parent = parent;
	n->next_sib = parent->first_child;
	if (n->next_sib)
		n->next_sib->prev_sib = n;
	parent->first_child = n;
	size_t h = name_hash(parent, name, len) & (t->nbuckets - 1);
	n->hnext = t->buckets[h];
	t->buckets[h] = n;
	if (++t->count > t->nbuckets)
		grow(t);
	tree_touch(parent, gen);
	return n;
}

void tree_drop(struct ext4_tree *t, struct ext4_node *n)
{
	struct ext4_node **pp = &t->buckets[name_hash(n->parent, n->name, n->name_len) & (t->nbuckets - 1)];
	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	if (n->prev_sib)
		n->prev_sib->next_sib = n->next_sib;
	else
		n->parent->first_child = n->next_sib;
	if (n->next_sib)
		n->next_sib->prev_sib = n->prev_sib;
	t->count--;
	free(n);
}

void tree_touch(struct ext4_node *n, uint32_t gen)
{
	for (; n && n->touched != gen; n = n->parent)
		n->touched = gen;
}
