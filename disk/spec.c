/* disk/spec.c - `--disk` specs and the checks every extra disk passes before a VM sees it:
 * the reference's syntax and messages, then ours (a regular file, an ext4 filesystem that fits
 * its file, a sane guest mount, nothing mounted twice). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/text.h"
#include "base/cleanup.h"
#include "disk/internal.h"
#include "ext4/ext4.h"

void disk_spec_clear(struct disk_spec *d)
{
	free(d->host_path);
	free(d->guest_mount);
	*d = (struct disk_spec){ 0 };
}

/* ^/[a-zA-Z0-9/_.-]+$ (the reference's rule: the path travels to the guest agent and must stay
 * one plain path), plus no "." or ".." component, which would mount somewhere else. */
static int check_guest_mount(const char *p, struct ml_err *e)
{
	bool ok = p[0] == '/' && p[1] && strlen(p) < 1024;
	for (const char *c = p; ok && *c; c++)
		ok = isalnum((unsigned char)*c) || strchr("/_.-", *c);
	if (!ok)
		return ml_err_set(e, -EINVAL, "invalid guest mount path \"%s\": must be absolute and contain "
				  "only alphanumeric, '/', '_', '.', '-'", p);
	if (strspn(p, "/") == strlen(p))
		return ml_err_set(e, -EINVAL, "invalid guest mount path \"%s\": must not be the root", p);
	for (const char *c = p; *c; c++) {
		if (c[0] != '/' || c[1] != '.')
			continue;
		size_t n = c[2] == '.' ? 3 : 2;
		if (c[n] == '/' || c[n] == '\0')
			return ml_err_set(e, -EINVAL, "invalid guest mount path \"%s\": must not contain \".\" "
					  "or \"..\" components", p);
	}
	return 0;
}

/* Is p the workspace or under it? Both are absolute; trailing slashes do not count. */
static bool under(const char *p, const char *ws)
{
	size_t n = strlen(ws);
	while (n > 1 && ws[n - 1] == '/')
		n--;
	if (n == 1 && ws[0] == '/')
		return true;
	return !strncmp(p, ws, n) && (p[n] == '\0' || p[n] == '/');
}

static int make_absolute(struct disk_spec *d, struct ml_err *e)
{
	if (d->host_path[0] == '/')
		return 0;
	char cwd[PATH_MAX];
	char *abs = NULL;
	if (!getcwd(cwd, sizeof(cwd)))
		return ml_err_set(e, -errno, "current directory: %m");
	if (asprintf(&abs, "%s/%s", cwd, d->host_path) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	free(d->host_path);
	d->host_path = abs;
	return 0;
}

static int check_host_file(const char *p, bool readonly, struct ml_err *e)
{
	struct stat st;
	if (stat(p, &st) < 0)
		return ml_err_set(e, -ENOENT, "host path does not exist: %s", p);
	if (S_ISDIR(st.st_mode))
		return ml_err_set(e, -EISDIR, "host path is a directory, not a disk image: %s (use "
				  "--volume to share a directory)", p);
	if (!S_ISREG(st.st_mode))
		return ml_err_set(e, -EINVAL, "host path is not a regular file: %s", p);
	if (access(p, readonly ? R_OK : R_OK | W_OK) < 0)
		return ml_err_set(e, -errno, "host path is not %s by this user: %s%s", readonly ? "readable"
				  : "readable and writable", p, readonly || access(p, R_OK) < 0 ? "" :
				  " (attach it read-only with :ro)");
	struct ext4_probe_info pi;
	return ext4_probe(p, &pi, e);
}

int disk_spec_check(struct disk_spec *d, const char *workspace, struct ml_err *e)
{
	if (!d->host_path || !*d->host_path || !d->guest_mount || !*d->guest_mount)
		return ml_err_set(e, -EINVAL, "host_path and guest_mount are required");
	int r = make_absolute(d, e);
	if (r == 0)
		r = check_host_file(d->host_path, d->readonly, e);
	if (r == 0)
		r = check_guest_mount(d->guest_mount, e);
	if (r == 0 && workspace && *workspace && under(d->guest_mount, workspace))
		r = ml_err_set(e, -EINVAL, "guest mount \"%s\" is inside workspace \"%s\" and will be "
			       "shadowed by the VFS mount", d->guest_mount, workspace);
	return r;
}

static int parse_option(const char *opt, bool *readonly, struct ml_err *e)
{
	if (!strcasecmp(opt, "ro") || !strcasecmp(opt, "readonly")) {
		*readonly = true;
		return 0;
	}
	return ml_err_set(e, -EINVAL, "unknown disk option \"%s\" (use \"ro\")", opt);
}

static int parse_parts(char *copy, const char *volumes_dir, const char *workspace, struct disk_spec *d,
		       struct ml_err *e)
{
	char *c1 = strchr(copy, ':');
	char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1)
		return ml_err_set(e, -EINVAL, "expected format host_path:guest_mount[:ro] or "
				  "@volume_name:guest_mount[:ro]");
	*c1 = '\0';
	if (c2)
		*c2 = '\0';
	char *host = ml_trim(copy), *guest = ml_trim(c1 + 1);
	if (!*host || !*guest)
		return ml_err_set(e, -EINVAL, "host_path and guest_mount are required");
	int r = 0;
	if (host[0] == '@') {
		char *name = ml_trim(host + 1);
		if (!*name)
			return ml_err_set(e, -EINVAL, "volume name is required after '@'");
		r = volume_find(volumes_dir, name, &d->host_path, e);
	} else if (!(d->host_path = strdup(host))) {
		r = ml_err_set(e, -ENOMEM, "out of memory");
	}
	if (r == 0 && !(d->guest_mount = strdup(guest)))
		r = ml_err_set(e, -ENOMEM, "out of memory");
	if (r == 0 && c2)
		r = parse_option(ml_trim(c2 + 1), &d->readonly, e);
	if (r == 0)
		r = disk_spec_check(d, workspace, e);
	return r;
}

int disk_spec_parse(const char *spec, const char *volumes_dir, const char *workspace,
		    struct disk_spec *out, struct ml_err *e)
{
	*out = (struct disk_spec){ 0 };
	_cleanup_free_ char *copy = strdup(spec);
	if (!copy)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int r = parse_parts(copy, volumes_dir, workspace, out, e);
	if (r < 0) {
		disk_spec_clear(out);
		ml_err_wrap(e, "invalid disk mount \"%s\"", spec);
	}
	return r;
}

int disk_specs_check_set(const struct disk_spec *d, size_t n, struct ml_err *e)
{
	if (n > DISK_MAX_EXTRA)
		return ml_err_set(e, -E2BIG, "too many disks: %zu (at most %d)", n, DISK_MAX_EXTRA);
	for (size_t i = 0; i < n; i++) {
		struct stat a, b;
		if (stat(d[i].host_path, &a) < 0)
			return ml_err_set(e, -errno, "host path does not exist: %s", d[i].host_path);
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(d[i].guest_mount, d[j].guest_mount))
				return ml_err_set(e, -EINVAL, "guest mount \"%s\" is used by two disks", d[i].guest_mount);
			/* a second lock on the same file would refuse us as our own holder */
			if (stat(d[j].host_path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
				return ml_err_set(e, -EINVAL, "disk %s is attached twice", d[i].host_path);
		}
	}
	return 0;
}
