/* ext4/path.c - untrusted archive paths to image nodes. Resolution is purely lexical and never
 * goes through a symlink stored in the image, so a layer cannot write "through" a link that an
 * earlier layer planted (the guest would see the file somewhere the layer did not name). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

int path_parse(const char *path, struct ext4_path *out, struct ml_err *e)
{
	memset(out, 0, sizeof(*out));
	size_t len = strnlen(path, EXT4_PATH_MAX + 1);
	if (len > EXT4_PATH_MAX)
		return ml_err_set(e, -ENAMETOOLONG, "path too long");
	out->buf = strdup(path);
	out->comp = calloc(len / 2 + 2, sizeof(*out->comp));
	if (!out->buf || !out->comp) {
		path_free(out);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	char *save = NULL;
	for (char *c = strtok_r(out->buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			if (out->n == 0) {
				path_free(out);
				return ml_err_set(e, -EINVAL, "path escapes the image root");
			}
			out->n--;
			continue;
		}
		if (strlen(c) > EXT4_NAME_MAX) {
			path_free(out);
			return ml_err_set(e, -ENAMETOOLONG, "name too long");
		}
		out->comp[out->n++] = c;
	}
	return 0;
}

void path_free(struct ext4_path *p)
{
	free(p->buf);
	free(p->comp);
	memset(p, 0, sizeof(*p));
}

static int check_dir(const struct ext4_node *n, const char *comp, struct ml_err *e)
{
	if (S_ISDIR(n->mode))
		return 0;
	if (S_ISLNK(n->mode))
		return ml_err_set(e, -ELOOP, "path component \"%s\" is a symlink", comp);
	return ml_err_set(e, -ENOTDIR, "path component \"%s\" is not a directory", comp);
}

int path_parent(struct ext4_img *img, const struct ext4_path *p, bool create,
		struct ext4_node **parent, struct ml_err *e)
{
	struct ext4_node *cur = img->tree.root;
	for (size_t i = 0; i + 1 < p->n; i++) {
		struct ext4_node *next = tree_child(&img->tree, cur, p->comp[i], strlen(p->comp[i]));
		if (!next && !create)
			return ml_err_set(e, -ENOENT, "\"%s\": no such directory", p->comp[i]);
		if (!next) {
			struct ext4_entry implicit = { .mode = S_IFDIR | 0755 };
			int r = inode_make_dir(img, cur, p->comp[i], &implicit, &next, e);
			if (r < 0)
				return r;
		}
		int r = check_dir(next, p->comp[i], e);
		if (r < 0)
			return r;
		cur = next;
	}
	*parent = cur;
	return 0;
}

int path_node(struct ext4_img *img, const char *path, struct ext4_node **out, struct ml_err *e)
{
	struct ext4_path p;
	int r = path_parse(path, &p, e);
	if (r < 0)
		return r;
	struct ext4_node *parent;
	r = path_parent(img, &p, false, &parent, e);
	if (r == 0 && p.n == 0)
		*out = img->tree.root;
	else if (r == 0) {
		const char *last = p.comp[p.n - 1];
		*out = tree_child(&img->tree, parent, last, strlen(last));
		if (!*out)
			r = ml_err_set(e, -ENOENT, "not in the image");
	}
	path_free(&p);
	return r;
}
