/* vfs/files.c - the files API the rpc server offers (write_file, read_file, list_files) for
 * paths under the workspace. It walks the same tree with the same operations as the guest's
 * own requests, so block rules and file events see these calls too; afterwards the guest
 * kernel is told to drop what it cached of the names and files touched, and we wait until the
 * agent has passed that on, so an exec that follows sees the new content. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfs/internal.h"
#include "vfs/vops.h"

#define SYNC_TIMEOUT_MS 2000

/* Go spells errno texts in lower case ("no such file or directory"); callers match on them. */
static const char *errtext(int err, char *buf, size_t n)
{
	snprintf(buf, n, "%s", strerror(-err));
	if (buf[0] && !(buf[1] && isupper((unsigned char)buf[1])))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

static int op_err(struct ml_err *e, int err, const char *op, const char *path)
{
	char t[128];
	return ml_err_set(e, err, "%s %s: %s", op, path, errtext(err, t, sizeof(t)));
}

bool vfs_covers(const struct vfs *v, const char *path)
{
	char p[PATH_MAX];
	if (!path || path[0] != '/' || vfs_path_clean(path, p, sizeof(p)) < 0)
		return false;
	size_t n = strlen(v->workspace);
	if (!strcmp(v->workspace, "/"))
		return true;
	return !strncmp(p, v->workspace, n) && (p[n] == '\0' || p[n] == '/');
}

/* The components of path below the workspace, cleaned, in rel (a copy: "a/b/c" or ""). */
static int relative(struct vfs *v, const char *path, char *rel, size_t n)
{
	char p[PATH_MAX];
	if (!vfs_covers(v, path) || vfs_path_clean(path, p, sizeof(p)) < 0)
		return -ENOENT;
	const char *r = p + strlen(v->workspace);
	while (*r == '/')
		r++;
	if (strlen(r) + 1 > n)
		return -ENAMETOOLONG;
	strcpy(rel, r);
	return 0;
}

/* Walks to the parent of the last component; *last points into rel. mkdirs: create missing
 * directories (0755, owned by the workspace owner) on the way, as write_file does. */
static int walk_parent(struct vfs *v, char *rel, bool mkdirs, struct node **dir, char **last)
{
	struct node *d = v->root;
	vtree_lock(v);
	vtree_ref(d);
	vtree_unlock(v);
	char *p = rel, *slash;
	while ((slash = strchr(p, '/'))) {
		*slash = '\0';
		struct node *next;
		struct vfs_attr a;
		int r = vfs_name_check(p, strlen(p));
		if (r == 0)
			r = vop_lookup(v, d, p, false, &next, &a);
		if (r == -ENOENT && mkdirs) {
			struct vfs_cred c = { v->owner_uid, v->owner_gid };
			r = vop_make(v, VOP_MKDIR, &c, d, p, 0755, NULL, false, &next, &a);
			if (r == 0)
				fuse_invalidate(v, d->id, p, 0);
		}
		if (r == 0 && !S_ISDIR(a.mode)) {
			vop_put(v, next);
			r = -ENOTDIR;
		}
		*slash = '/';
		if (r < 0) {
			vop_put(v, d);
			return r;
		}
		vop_put(v, d);
		d = next;
		p = slash + 1;
	}
	*dir = d;
	*last = p;
	return 0;
}

static int write_all(struct vfs *v, struct handle *h, const uint8_t *data, size_t len)
{
	for (size_t off = 0; off < len;) {
		size_t chunk = len - off < VFS_MAX_WRITE ? len - off : VFS_MAX_WRITE;
		ssize_t n = vop_write(v, h, data + off, chunk, off);
		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		off += (size_t)n;
	}
	return 0;
}

int vfs_write_file(struct vfs *v, const char *path, const void *data, size_t len, uint32_t mode,
		   struct ml_err *e)
{
	char rel[PATH_MAX];
	int r = relative(v, path, rel, sizeof(rel));
	if (r < 0 || !*rel)
		return op_err(e, r < 0 ? r : -EISDIR, "open", path);
	struct node *dir, *n = NULL;
	char *name;
	if ((r = walk_parent(v, rel, true, &dir, &name)) < 0)
		return op_err(e, r, "open", path);
	struct vfs_attr a;
	uint64_t fh = 0;
	struct handle *h = NULL;
	r = vfs_name_check(name, strlen(name));
	if (r == 0)
		r = vop_lookup(v, dir, name, false, &n, &a);
	if (r == 0) {
		/* an existing file keeps its mode; the open is reported as create, as O_CREAT is */
		r = S_ISDIR(a.mode) ? -EISDIR : vop_open(v, n, O_WRONLY | O_TRUNC | O_CREAT, &fh, &h);
	} else if (r == -ENOENT) {
		struct vfs_cred c = { v->owner_uid, v->owner_gid };
		r = vop_create(v, &c, dir, name, O_WRONLY, (mode ? mode : 0644) & 07777, false, &n, &fh, &a);
		if (r == 0) { /* the table holds the handle until vop_release(fh) */
			h = handle_get(v, fh);
			handle_put(v, h);
		}
	}
	if (r < 0) {
		vop_put(v, n);
		vop_put(v, dir);
		return op_err(e, r, "open", path);
	}
	int w = write_all(v, h, data, len);
	vop_release(v, fh);
	fuse_invalidate(v, dir->id, name, n->id);
	vop_put(v, n);
	vop_put(v, dir);
	chan_sync(v, SYNC_TIMEOUT_MS);
	return w < 0 ? op_err(e, w, "write", path) : 0;
}

static int resolve(struct vfs *v, const char *path, struct node **out, struct vfs_attr *a)
{
	char rel[PATH_MAX];
	int r = relative(v, path, rel, sizeof(rel));
	if (r < 0)
		return r;
	if (!*rel) {
		vtree_lock(v);
		vtree_ref(v->root);
		vtree_unlock(v);
		*out = v->root;
		return vop_getattr(v, v->root, NULL, a);
	}
	struct node *dir;
	char *name;
	if ((r = walk_parent(v, rel, false, &dir, &name)) < 0)
		return r;
	r = vfs_name_check(name, strlen(name));
	if (r == 0)
		r = vop_lookup(v, dir, name, false, out, a);
	vop_put(v, dir);
	return r;
}

int vfs_read_file(struct vfs *v, const char *path, uint8_t **data, size_t *len, struct ml_err *e)
{
	struct node *n = NULL;
	struct vfs_attr a;
	int r = resolve(v, path, &n, &a);
	if (r < 0)
		return op_err(e, r, "open", path);
	if (!S_ISREG(a.mode)) {
		vop_put(v, n);
		return ml_err_set(e, -EINVAL, "read_file only supports regular files: %s", path);
	}
	if (a.size > VFS_READ_FILE_MAX) {
		vop_put(v, n);
		return ml_err_set(e, -EFBIG, "read_file exceeds %u bytes: %s", VFS_READ_FILE_MAX, path);
	}
	uint64_t fh;
	struct handle *h;
	r = vop_open(v, n, O_RDONLY, &fh, &h);
	vop_put(v, n);
	if (r < 0)
		return op_err(e, r, "open", path);
	size_t cap = a.size + 1, got = 0;
	uint8_t *buf = malloc(cap);
	for (ssize_t k = 1; buf && k > 0 && got < cap;) {
		k = vop_read(v, h, buf + got, cap - got, got);
		if (k < 0)
			r = (int)k;
		else
			got += (size_t)k;
	}
	vop_release(v, fh);
	if (!buf)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (r < 0 || got > VFS_READ_FILE_MAX) {
		free(buf);
		return r < 0 ? op_err(e, r, "read", path)
			     : ml_err_set(e, -EFBIG, "read_file exceeds %u bytes: %s", VFS_READ_FILE_MAX, path);
	}
	*data = buf;
	*len = got;
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct vfs_file_info *)a)->name, ((const struct vfs_file_info *)b)->name);
}

/* An entry's attributes without a stat event (list_files reports one readdir). */
static int entry_attr(struct vfs *v, struct node *dir, const char *name, struct vfs_attr *a)
{
	vtree_lock(v);
	struct node *kid = NULL;
	for (size_t i = 0; i < dir->nkids; i++)
		if (!strcmp(dir->kids[i]->name, name))
			kid = dir->kids[i];
	if (kid)
		vtree_ref(kid);
	vtree_unlock(v);
	if (kid) {
		int r = vop_getattr(v, kid, NULL, a);
		vop_put(v, kid);
		return r;
	}
	struct mem_inode *mi = NULL;
	int r = dir->m ? dir->m->be->lookup(v, dir, name, a, &mi) : -ENOENT;
	if (mi)
		memfs_inode_unref(v->memfs, mi);
	return r;
}

int vfs_list_files(struct vfs *v, const char *path, struct vfs_file_info **out, size_t *count,
		   struct ml_err *e)
{
	struct node *n = NULL;
	struct vfs_attr a;
	int r = resolve(v, path, &n, &a);
	if (r == 0 && !S_ISDIR(a.mode))
		r = -ENOTDIR;
	uint64_t fh = 0;
	struct handle *h = NULL;
	if (r == 0)
		r = vop_opendir(v, n, &fh, &h);
	if (r < 0) {
		vop_put(v, n);
		return op_err(e, r, "open", path);
	}
	r = vop_list(v, h);
	struct vfs_file_info *f = r == 0 ? calloc(h->nents + 1, sizeof(*f)) : NULL;
	size_t k = 0;
	for (size_t i = 0; f && i < h->nents; i++) {
		struct vfs_attr ea;
		if (entry_attr(v, n, h->ents[i].name, &ea) < 0)
			continue; /* gone since the listing */
		if (!(f[k].name = strdup(h->ents[i].name)))
			break;
		f[k].size = (int64_t)ea.size;
		f[k].mode = ea.mode;
		f[k].is_dir = S_ISDIR(ea.mode);
		k++;
	}
	vop_release(v, fh);
	vop_put(v, n);
	if (!f)
		return r < 0 ? op_err(e, r, "readdirent", path) : ml_err_set(e, -ENOMEM, "out of memory");
	qsort(f, k, sizeof(*f), cmp_info);
	*out = f;
	*count = k;
	return 0;
}

void vfs_file_infos_free(struct vfs_file_info *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++)
		free(f[i].name);
	free(f);
}
