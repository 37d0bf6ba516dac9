/* vfs/config.c - the workspace's configuration: `-v host:guest[:opt]` specs, the rpc create
 * checks, rule ops and actions. Every message is the reference's, word for word (scripts and
 * tests match on them). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "vfs/vfs.h"

static const char *const op_names[VFS_OP_COUNT] = {
	[VFS_OP_STAT] = "stat", [VFS_OP_READDIR] = "readdir", [VFS_OP_OPEN] = "open",
	[VFS_OP_CREATE] = "create", [VFS_OP_MKDIR] = "mkdir", [VFS_OP_CHMOD] = "chmod",
	[VFS_OP_REMOVE] = "remove", [VFS_OP_REMOVE_ALL] = "remove_all", [VFS_OP_RENAME] = "rename",
	[VFS_OP_SYMLINK] = "symlink", [VFS_OP_READLINK] = "readlink", [VFS_OP_READ] = "read",
	[VFS_OP_WRITE] = "write", [VFS_OP_CLOSE] = "close", [VFS_OP_SYNC] = "sync",
	[VFS_OP_TRUNCATE] = "truncate",
};

const char *vfs_op_name(enum vfs_op op)
{
	return op >= 0 && op < VFS_OP_COUNT ? op_names[op] : "unknown";
}

int vfs_op_parse(const char *s)
{
	if (!s)
		return -1;
	if (!strcasecmp(s, "read_dir"))
		return VFS_OP_READDIR;
	if (!strcasecmp(s, "removeall"))
		return VFS_OP_REMOVE_ALL;
	for (int i = 0; i < VFS_OP_COUNT; i++)
		if (!strcasecmp(s, op_names[i]))
			return i;
	return -1;
}

uint32_t vfs_ops_mask(const char *const *ops, size_t n)
{
	uint32_t m = 0;
	for (size_t i = 0; i < n; i++) {
		int op = vfs_op_parse(ops[i]);
		if (op >= 0)
			m |= 1u << op;
	}
	return m;
}

enum vfs_mount_type vfs_mount_type_parse(const char *s)
{
	if (s && !strcmp(s, "host_fs"))
		return VFS_MOUNT_HOST_FS;
	if (s && !strcmp(s, "overlay"))
		return VFS_MOUNT_OVERLAY;
	return VFS_MOUNT_MEMORY;
}

enum vfs_action vfs_action_parse(const char *s)
{
	if (s && !strcasecmp(s, "allow"))
		return VFS_ACTION_ALLOW;
	if (s && !strcasecmp(s, "block"))
		return VFS_ACTION_BLOCK;
	return VFS_ACTION_NONE;
}

int vfs_path_clean(const char *in, char *out, size_t n)
{
	if (n < 2)
		return -ENAMETOOLONG;
	bool rooted = in[0] == '/';
	size_t o = 0, floor = 0; /* floor: how far ".." may pop */
	if (rooted)
		out[o++] = '/', floor = 1;
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		const char *end = p + strcspn(p, "/");
		size_t len = (size_t)(end - p);
		if (len == 0 || (len == 1 && p[0] == '.')) {
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (o > floor) {
				while (o > floor && out[o - 1] != '/')
					o--;
				if (o > floor)
					o--; /* the '/' before it */
			} else if (!rooted) {
				if (o > 0) {
					if (o + 1 >= n)
						return -ENAMETOOLONG;
					out[o++] = '/';
				}
				if (o + 2 >= n)
					return -ENAMETOOLONG;
				out[o++] = '.';
				out[o++] = '.';
				floor = o;
			}
		} else {
			if (o > (rooted ? 1u : 0u)) {
				if (o + 1 >= n)
					return -ENAMETOOLONG;
				out[o++] = '/';
			}
			if (o + len >= n)
				return -ENAMETOOLONG;
			memcpy(out + o, p, len);
			o += len;
		}
		p = end;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return 0;
}

bool vfs_guest_path_valid(const char *p)
{
	if (!p || p[0] != '/' || !p[1])
		return false;
	for (const char *c = p; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("/_.-", *c))
			return false;
	return true;
}

/* Equal to ws or below it; ws "/" admits every absolute path. */
static bool within(const char *p, const char *ws)
{
	size_t n = strlen(ws);
	if (!strcmp(ws, "/"))
		return p[0] == '/';
	return !strncmp(p, ws, n) && (p[n] == '\0' || p[n] == '/');
}

static bool blank(const char *s)
{
	for (; s && *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

int vfs_config_validate(const struct vfs_config *c, struct ml_err *e)
{
	const char *pre = "invalid configuration: ";
	if (!blank(c->workspace) && c->n_mounts == 0)
		return ml_err_set(e, -EINVAL, "%svfs.workspace requires at least one vfs.mounts entry", pre);
	if (c->n_mounts > 0 && blank(c->workspace))
		return ml_err_set(e, -EINVAL, "%svfs.workspace is required when vfs.mounts is set", pre);
	if (c->interception && c->n_mounts == 0)
		return ml_err_set(e, -EINVAL, "%svfs.interception requires at least one vfs.mounts entry", pre);
	if (c->n_mounts == 0)
		return 0;
	if (!vfs_guest_path_valid(c->workspace))
		return ml_err_set(e, -EINVAL, "%svfs.workspace: invalid guest mount path \"%s\": must be "
				  "absolute and contain only alphanumeric, '/', '_', '.', '-'", pre, c->workspace);
	char ws[PATH_MAX], p[PATH_MAX];
	if (vfs_path_clean(c->workspace, ws, sizeof(ws)) < 0)
		return ml_err_set(e, -ENAMETOOLONG, "%svfs.workspace is too long", pre);
	for (size_t i = 0; i < c->n_mounts; i++) {
		const char *g = c->mounts[i].guest_path ? c->mounts[i].guest_path : "";
		if (g[0] != '/')
			return ml_err_set(e, -EINVAL, "%sguest path must be absolute: \"%s\"", pre, g);
		if (vfs_path_clean(g, p, sizeof(p)) < 0)
			return ml_err_set(e, -ENAMETOOLONG, "%sguest path is too long: \"%.64s...\"", pre, g);
		if (!within(p, ws))
			return ml_err_set(e, -EINVAL, "%sguest path must be within workspace: \"%s\" not in \"%s\"",
					  pre, p, ws);
	}
	return 0;
}

static int volume_option(const char *opt, struct vfs_mount_cfg *m)
{
	if (!*opt || !strcasecmp(opt, "overlay"))
		m->type = VFS_MOUNT_OVERLAY;
	else if (!strcasecmp(opt, "host_fs"))
		m->type = VFS_MOUNT_HOST_FS;
	else if (!strcasecmp(opt, "ro") || !strcasecmp(opt, "readonly"))
		m->type = VFS_MOUNT_HOST_FS, m->readonly = true;
	else
		return -EINVAL;
	return 0;
}

/* The host path made absolute (relative to the working directory) and cleaned. */
static int host_abs(const char *h, char *out, size_t n)
{
	char joined[PATH_MAX * 2];
	if (h[0] == '/') {
		snprintf(joined, sizeof(joined), "%s", h);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		snprintf(joined, sizeof(joined), "%s/%s", cwd, h);
	}
	return vfs_path_clean(joined, out, n);
}

/* What the supervisor must be able to do to serve (or copy) it: list and enter a directory,
 * read a file. Checked here so an unreadable path is one clear line before anything starts. */
static int host_readable(const char *abs, const struct stat *st)
{
	int mode = S_ISDIR(st->st_mode) ? R_OK | X_OK : R_OK;
	return access(abs, mode) < 0 ? -errno : 0;
}

int vfs_volume_parse(const char *spec, const char *workspace, struct vfs_mount_cfg *out,
		     struct ml_err *e)
{
	_cleanup_free_ char *s = strdup(spec);
	if (!s)
		return ml_err_set(e, -ENOMEM, "out of memory");
	char *parts[4] = { 0 };
	size_t n = 0;
	for (char *p = s, *c; n < 4; p = c + 1) {
		parts[n++] = p;
		if (!(c = strchr(p, ':')))
			break;
		*c = '\0';
	}
	const char *pre = "invalid volume mount";
	if (n < 2 || n > 3)
		return ml_err_set(e, -EINVAL, "%s \"%s\": expected format host:guest or host:guest:ro", pre, spec);
	struct vfs_mount_cfg m = { 0 };
	char host[PATH_MAX], guest[PATH_MAX], ws[PATH_MAX], joined[PATH_MAX * 2];
	if (host_abs(parts[0], host, sizeof(host)) < 0)
		return ml_err_set(e, -ENAMETOOLONG, "%s \"%s\": host path is too long", pre, spec);
	struct stat st;
	if (stat(host, &st) < 0)
		return ml_err_set(e, -ENOENT, "%s \"%s\": host path does not exist: %s", pre, spec, host);
	int r = host_readable(host, &st);
	if (r < 0)
		return ml_err_set(e, r, "%s \"%s\": host path is not readable: %s: %s", pre, spec, host,
				  strerror(-r));
	if (n == 3 && volume_option(parts[2], &m) < 0)
		return ml_err_set(e, -EINVAL, "%s \"%s\": unknown option \"%s\" (use 'ro', 'overlay', or "
				  "'host_fs')", pre, spec, parts[2]);
	if (n == 2)
		m.type = VFS_MOUNT_OVERLAY;
	if (vfs_path_clean(workspace && *workspace ? workspace : "/", ws, sizeof(ws)) < 0)
		return ml_err_set(e, -ENAMETOOLONG, "%s \"%s\": workspace path is too long", pre, spec);
	if (parts[1][0] == '/')
		snprintf(joined, sizeof(joined), "%s", parts[1]);
	else
		snprintf(joined, sizeof(joined), "%s/%s", ws, parts[1]);
	if (vfs_path_clean(joined, guest, sizeof(guest)) < 0)
		return ml_err_set(e, -ENAMETOOLONG, "%s \"%s\": guest path is too long", pre, spec);
	if (!within(guest, ws))
		return ml_err_set(e, -EINVAL, "%s \"%s\": guest path must be within workspace: \"%s\" not in \"%s\"",
				  pre, spec, guest, ws);
	m.guest_path = strdup(guest);
	m.host_path = strdup(host);
	if (!m.guest_path || !m.host_path) {
		vfs_mount_cfg_free(&m);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	*out = m;
	return 0;
}

int vfs_config_add_mount(struct vfs_config *c, struct vfs_mount_cfg *m)
{
	for (size_t i = 0; i < c->n_mounts; i++) {
		if (c->mounts[i].guest_path && m->guest_path && !strcmp(c->mounts[i].guest_path, m->guest_path)) {
			vfs_mount_cfg_free(&c->mounts[i]);
			c->mounts[i] = *m;
			*m = (struct vfs_mount_cfg){ 0 };
			return 0;
		}
	}
	struct vfs_mount_cfg *v = realloc(c->mounts, (c->n_mounts + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->mounts = v;
	c->mounts[c->n_mounts++] = *m;
	*m = (struct vfs_mount_cfg){ 0 };
	return 0;
}

void vfs_mount_cfg_free(struct vfs_mount_cfg *m)
{
	free(m->guest_path);
	free(m->host_path);
	*m = (struct vfs_mount_cfg){ 0 };
}

void vfs_rule_free(struct vfs_rule *r)
{
	free(r->name);
	free(r->path);
	*r = (struct vfs_rule){ 0 };
}

void vfs_config_free(struct vfs_config *c)
{
	for (size_t i = 0; i < c->n_mounts; i++)
		vfs_mount_cfg_free(&c->mounts[i]);
	for (size_t i = 0; i < c->n_rules; i++)
		vfs_rule_free(&c->rules[i]);
	free(c->mounts);
	free(c->rules);
	free(c->workspace);
	free(c->owner);
	*c = (struct vfs_config){ 0 };
}
