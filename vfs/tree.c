/* vfs/tree.c - the node table: what the guest kernel knows by nodeid, how each node hangs in
 * the tree (parent + name, so its path is rebuilt from its ancestors on every use and follows
 * renames at no cost), and the pinned skeleton of mount points and synthesized directories.
 *
 * Every node id the guest sends is looked up here; an id we never gave out, or gave out and
 * the kernel forgot, is simply not found (that request fails). Ids are never reused. A node
 * lives while the kernel references it (nlookup), a child node or an open handle needs it
 * (refs), or it is pinned. All of it under one mutex: the work done under it is pointer
 * chasing, never a syscall. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "vfs/internal.h"

#define TAB_MIN 256

void vtree_lock(struct vfs *v) { pthread_mutex_lock(&v->tree_mu); }
void vtree_unlock(struct vfs *v) { pthread_mutex_unlock(&v->tree_mu); }
uint64_t vtree_count(struct vfs *v) { return v->n_nodes; }

static size_t hash_id(uint64_t id, size_t cap) { return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1); }

static size_t hash_name(const struct node *parent, const char *name, size_t cap)
{
	uint64_t h = (uint64_t)(uintptr_t)parent * 0x100000001b3ull ^ 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 29) & (cap - 1);
}

static int tabs_grow(struct vfs *v)
{
	size_t cap = v->id_cap ? v->id_cap * 2 : TAB_MIN;
	struct node **ids = calloc(cap, sizeof(*ids)), **names = calloc(cap, sizeof(*names));
	if (!ids || !names) {
		free(ids);
		free(names);
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->id_cap; i++) {
		for (struct node *n = v->id_tab[i], *next; n; n = next) {
			next = n->id_next;
			size_t h = hash_id(n->id, cap);
			n->id_next = ids[h];
			ids[h] = n;
		}
		for (struct node *n = v->name_tab[i], *next; n; n = next) {
			next = n->name_next;
			size_t h = hash_name(n->parent, n->name, cap);
			n->name_next = names[h];
			names[h] = n;
		}
	}
	free(v->id_tab);
	free(v->name_tab);
	v->id_tab = ids;
	v->name_tab = names;
	v->id_cap = v->name_cap = cap;
	return 0;
}

int vtree_init(struct vfs *v)
{
	pthread_mutex_init(&v->tree_mu, NULL);
	v->next_id = FUSE_ROOT_ID;
	return tabs_grow(v);
}

static void unlink_chain(struct node **head, struct node *n, bool by_id)
{
	for (struct node **pp = head; *pp; pp = by_id ? &(*pp)->id_next : &(*pp)->name_next) {
		if (*pp == n) {
			*pp = by_id ? n->id_next : n->name_next;
			return;
		}
	}
}

static bool in_name_tab(const struct node *n) { return n->parent && !n->pinned; }

static void name_remove(struct vfs *v, struct node *n)
{
	if (in_name_tab(n))
		unlink_chain(&v->name_tab[hash_name(n->parent, n->name, v->name_cap)], n, false);
}

static void name_insert(struct vfs *v, struct node *n)
{
	if (!in_name_tab(n))
		return;
	size_t h = hash_name(n->parent, n->name, v->name_cap);
	n->name_next = v->name_tab[h];
	v->name_tab[h] = n;
}

static void node_free(struct vfs *v, struct node *n)
{
	unlink_chain(&v->id_tab[hash_id(n->id, v->id_cap)], n, true);
	name_remove(v, n);
	if (n->mi)
		memfs_inode_unref(v->memfs, n->mi);
	if (n->keep_fd >= 0) {
		close(n->keep_fd);
		v->n_kept--;
	}
	struct node *parent = n->parent;
	free(n->name);
	free(n->kids);
	free(n);
	v->n_nodes--;
	if (parent)
		vtree_unref(v, parent);
}

static void maybe_free(struct vfs *v, struct node *n)
{
	if (!n->pinned && n->nlookup == 0 && n->refs == 0)
		node_free(v, n);
}

struct node *vtree_get(struct vfs *v, uint64_t id)
{
	for (struct node *n = v->id_tab[hash_id(id, v->id_cap)]; n; n = n->id_next)
		if (n->id == id)
			return n;
	return NULL;
}

struct node *vtree_child(struct vfs *v, struct node *dir, const char *name)
{
	for (size_t i = 0; i < dir->nkids; i++)
		if (!strcmp(dir->kids[i]->name, name))
			return dir->kids[i];
	for (struct node *n = v->name_tab[hash_name(dir, name, v->name_cap)]; n; n = n->name_next)
		if (n->parent == dir && !strcmp(n->name, name))
			return n;
	return NULL;
}

static struct node *node_new(struct vfs *v, struct node *parent, const char *name, struct vmount *m)
{
	if (v->n_nodes + 1 > v->id_cap && tabs_grow(v) < 0)
		return NULL;
	struct node *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	n->id = v->next_id++;
	n->keep_fd = -1;
	n->parent = parent;
	n->m = m;
	if (parent)
		vtree_ref(parent);
	size_t h = hash_id(n->id, v->id_cap);
	n->id_next = v->id_tab[h];
	v->id_tab[h] = n;
	v->n_nodes++;
	return n;
}

struct node *vtree_child_make(struct vfs *v, struct node *dir, const char *name)
{
	struct node *n = vtree_child(v, dir, name);
	if (n)
		return n;
	if (!(n = node_new(v, dir, name, dir->m)))
		return NULL;
	name_insert(v, n);
	return n;
}

void vtree_lookup_ref(struct node *n) { n->nlookup++; }
void vtree_ref(struct node *n) { n->refs++; }

void vtree_unref(struct vfs *v, struct node *n)
{
	if (n->refs)
		n->refs--;
	maybe_free(v, n);
}

void vtree_forget(struct vfs *v, struct node *n, uint64_t count)
{
	n->nlookup -= count < n->nlookup ? count : n->nlookup;
	maybe_free(v, n);
}

void vtree_detach(struct vfs *v, struct node *n)
{
	if (n->pinned || !n->parent)
		return;
	name_remove(v, n);
	struct node *parent = n->parent;
	n->parent = NULL;
	vtree_ref(n); /* keep it through the parent's release */
	vtree_unref(v, parent);
	vtree_unref(v, n);
}

int vtree_move(struct vfs *v, struct node *n, struct node *dir, const char *name)
{
	if (n->pinned)
		return -EBUSY;
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	struct node *old = vtree_child(v, dir, name);
	if (old && old != n)
		vtree_detach(v, old);
	vtree_ref(n);
	name_remove(v, n);
	struct node *from = n->parent;
	vtree_ref(dir);
	n->parent = dir;
	free(n->name);
	n->name = copy;
	name_insert(v, n);
	if (from)
		vtree_unref(v, from);
	vtree_unref(v, n);
	return 0;
}

/* Components from stop (exclusive) down to n, joined with '/', into buf. */
static int join_up(const struct node *n, const struct node *stop, char *buf, size_t size, size_t *len)
{
	const struct node *chain[PATH_MAX / 2];
	size_t depth = 0;
	for (const struct node *p = n; p != stop; p = p->parent) {
		if (!p || depth == sizeof(chain) / sizeof(chain[0]))
			return p ? -ENAMETOOLONG : -ENOENT;
		chain[depth++] = p;
	}
	size_t o = 0;
	while (depth--) {
		size_t l = strlen(chain[depth]->name);
		if (o + l + 2 > size)
			return -ENAMETOOLONG;
		if (o)
			buf[o++] = '/';
		memcpy(buf + o, chain[depth]->name, l);
		o += l;
	}
	buf[o] = '\0';
	*len = o;
	return 0;
}

static const struct node *mount_root_of(const struct node *n)
{
	while (n && !n->mount_root)
		n = n->parent;
	return n;
}

int vtree_relpath(struct node *n, char *buf, size_t size)
{
	const struct node *root = mount_root_of(n);
	if (!root || !n->m || root->m != n->m)
		return -ENOENT;
	if (root == n) {
		const char *base = n->m->base ? n->m->base : ".";
		if (strlen(base) + 1 > size)
			return -ENAMETOOLONG;
		strcpy(buf, base);
		return 0;
	}
	size_t len;
	return join_up(n, root, buf, size, &len);
}

int vtree_guest_path(struct vfs *v, struct node *n, const char *name, char *buf, size_t size)
{
	size_t ws = strlen(v->workspace), len = 0;
	if (ws + 2 > size)
		return -ENAMETOOLONG;
	memcpy(buf, v->workspace, ws + 1);
	if (n != v->root) {
		if (ws > 1)
			buf[ws++] = '/';
		int r = join_up(n, v->root, buf + ws, size - ws, &len);
		if (r < 0)
			return r;
		ws += len;
	}
	if (name) {
		size_t l = strlen(name);
		if (ws + l + 2 > size)
			return -ENAMETOOLONG;
		if (ws > 1)
			buf[ws++] = '/';
		memcpy(buf + ws, name, l + 1);
	}
	return 0;
}

/* ---- the pinned skeleton ---- */
static struct node *pin_child(struct vfs *v, struct node *dir, const char *name, struct vmount *m)
{
	struct node *n = node_new(v, dir, name, m);
	struct node **kids = n ? realloc(dir->kids, (dir->nkids + 1) * sizeof(*kids)) : NULL;
	if (!kids) {
		if (n) {
			unlink_chain(&v->id_tab[hash_id(n->id, v->id_cap)], n, true);
			free(n->name);
			free(n);
			v->n_nodes--;
		}
		return NULL;
	}
	n->pinned = true;
	kids[dir->nkids++] = n;
	dir->kids = kids;
	return n;
}

static int cmp_depth(const void *a, const void *b)
{
	const struct vmount *x = a, *y = b;
	size_t lx = strlen(x->guest_path), ly = strlen(y->guest_path);
	return lx < ly ? -1 : lx > ly;
}

/* Places one mount: every missing parent between the workspace and its point becomes a
 * synthesized directory (shadowing whatever an enclosing mount has there), then its root. */
static int place_mount(struct vfs *v, struct vmount *m, struct ml_err *e)
{
	const char *rest = m->guest_path + strlen(v->workspace);
	struct node *dir = v->root;
	char comp[NAME_MAX + 1];
	while (*rest) {
		while (*rest == '/')
			rest++;
		size_t l = strcspn(rest, "/");
		if (l == 0)
			break;
		if (l > NAME_MAX)
			return ml_err_set(e, -ENAMETOOLONG, "mount %s: a path component is too long", m->guest_path);
		memcpy(comp, rest, l);
		comp[l] = '\0';
		rest += l;
		bool last = !rest[strspn(rest, "/")];
		if (dir->m && dir->m->single_file)
			return ml_err_set(e, -ENOTDIR, "mount %s is inside the single-file mount %s",
					  m->guest_path, dir->m->guest_path);
		struct node *kid = NULL;
		for (size_t i = 0; i < dir->nkids; i++)
			if (!strcmp(dir->kids[i]->name, comp))
				kid = dir->kids[i];
		if (!kid && !(kid = pin_child(v, dir, comp, last ? m : NULL)))
			return ml_err_set(e, -ENOMEM, "out of memory");
		if (last) {
			kid->m = m;
			kid->mount_root = true;
		}
		dir = kid;
	}
	return 0;
}

int vtree_build(struct vfs *v, struct ml_err *e)
{
	v->root = node_new(v, NULL, "", NULL);
	if (!v->root)
		return ml_err_set(e, -ENOMEM, "out of memory");
	v->root->pinned = true;
	qsort(v->mounts, v->n_mounts, sizeof(*v->mounts), cmp_depth);
	for (size_t i = 0; i < v->n_mounts; i++) {
		struct vmount *m = &v->mounts[i];
		if (!strcmp(m->guest_path, v->workspace)) {
			v->root->m = m;
			v->root->mount_root = true;
			continue;
		}
		int r = place_mount(v, m, e);
		if (r < 0)
			return r;
	}
	if (v->root->m && v->root->m->single_file)
		return ml_err_set(e, -ENOTDIR, "the workspace %s cannot be a single file", v->workspace);
	return 0;
}

void vtree_free(struct vfs *v)
{
	for (size_t i = 0; i < v->id_cap; i++) {
		for (struct node *n = v->id_tab[i], *next; n; n = next) {
			next = n->id_next;
			if (n->mi)
				memfs_inode_unref(v->memfs, n->mi);
			if (n->keep_fd >= 0)
				close(n->keep_fd);
			free(n->name);
			free(n->kids);
			free(n);
		}
	}
	free(v->id_tab);
	free(v->name_tab);
	v->id_tab = v->name_tab = NULL;
	v->id_cap = v->name_cap = v->n_nodes = 0;
	pthread_mutex_destroy(&v->tree_mu);
}
