/* agent/user.c - resolve EX_USER ("uid", "uid:gid", "name", "name:group") against the guest
 * image's /etc/passwd and /etc/group. The agent is static, so there is no NSS: we parse the
 * files ourselves. They belong to the image, so every field is treated as untrusted text. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

#define MAX_GROUPS 256

struct pwent {
	char *name, *home;
	uid_t uid;
	gid_t gid;
};

/* Decimal id without sign or junk, below 2^32-1 (which means "no id" to the kernel). */
static bool parse_id(const char *s, uint32_t *out)
{
	if (!s || !*s || strlen(s) > 10 || strspn(s, "0123456789") != strlen(s))
		return false;
	unsigned long long v = strtoull(s, NULL, 10);
	if (v >= UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Splits line into at most n ':' fields; returns how many there were. */
static size_t split_fields(char *line, char **f, size_t n)
{
	line[strcspn(line, "\r\n")] = '\0';
	size_t i = 0;
	char *p = line;
	while (i < n && p) {
		f[i++] = strsep(&p, ":");
	}
	return i;
}

static FILE *open_db(const char *etc, const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", etc, name);
	/* O_NONBLOCK then cleared: a FIFO planted in /etc must fail, not hang the exec */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	fcntl(fd, F_SETFL, 0);
	FILE *f = fdopen(fd, "r");
	if (!f)
		close(fd);
	return f;
}

/* By name (name != NULL) or by uid. Returns 1 found, 0 not found. */
static int passwd_find(const char *etc, const char *name, uid_t uid, struct pwent *pw)
{
	_cleanup_fclose_ FILE *f = open_db(etc, "passwd");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		char *fl[7];
		uint32_t u, g;
		if (split_fields(line, fl, 7) < 7 || !parse_id(fl[2], &u) || !parse_id(fl[3], &g))
			continue;
		if (name ? strcmp(fl[0], name) != 0 : u != uid)
			continue;
		pw->name = strdup(fl[0]);
		pw->home = strdup(fl[5][0] ? fl[5] : "/");
		if (!pw->name || !pw->home)
			return -ENOMEM;
		pw->uid = u;
		pw->gid = g;
		return 1;
	}
	return 0;
}

static bool member_of(char *members, const char *name)
{
	char *p = members;
	char *m;
	while ((m = strsep(&p, ",")))
		if (strcmp(m, name) == 0)
			return true;
	return false;
}

static void add_group(struct user_ids *u, gid_t g)
{
	for (size_t i = 0; i < u->ngroups; i++)
		if (u->groups[i] == g)
			return;
	if (u->ngroups < MAX_GROUPS)
		u->groups[u->ngroups++] = g;
}

/* Looks up group by name (when gname != NULL) and collects name's supplementary groups. */
static int group_scan(const char *etc, const char *gname, gid_t *gid, struct user_ids *u)
{
	_cleanup_fclose_ FILE *f = open_db(etc, "group");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int found = 0;
	while (f && getline(&line, &cap, f) > 0) {
		char *fl[4];
		uint32_t g;
		if (split_fields(line, fl, 4) < 4 || !parse_id(fl[2], &g))
			continue;
		if (gname && strcmp(fl[0], gname) == 0) {
			*gid = g;
			found = 1;
		}
		if (u->name && member_of(fl[3], u->name))
			add_group(u, g);
	}
	return found;
}

static int resolve_user_part(const char *etc, const char *spec, struct user_ids *u, struct ml_err *e)
{
	struct pwent pw = { 0 };
	uint32_t id;
	int r;
	if (parse_id(spec, &id)) {
		r = passwd_find(etc, NULL, id, &pw);
		u->uid = id;
		u->gid = r == 1 ? pw.gid : 0; /* like Docker: a uid with no passwd entry gets gid 0 */
	} else {
		r = passwd_find(etc, spec, 0, &pw);
		if (r == 0)
			return ml_err_set(e, -ENOENT, "unable to find user %s", spec);
		u->uid = pw.uid;
		u->gid = pw.gid;
	}
	if (r < 0) {
		free(pw.name);
		free(pw.home);
		return ml_err_set(e, r, "reading passwd: %s", strerror(-r));
	}
	u->name = pw.name;
	u->home = pw.home;
	return 0;
}

int user_resolve(const char *etc, const char *spec, struct user_ids *u, struct ml_err *e)
{
	memset(u, 0, sizeof(*u));
	_cleanup_free_ char *copy = strdup(spec ? spec : "0");
	u->groups = calloc(MAX_GROUPS, sizeof(gid_t));
	if (!copy || !u->groups) {
		user_ids_free(u);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	char *gpart = strchr(copy, ':');
	if (gpart)
		*gpart++ = '\0';
	int r = resolve_user_part(etc, copy, u, e);
	if (r < 0) {
		user_ids_free(u);
		return r;
	}
	uint32_t id;
	gid_t named = 0;
	bool by_name = gpart && !parse_id(gpart, &id);
	if (gpart && !by_name)
		u->gid = id;
	add_group(u, u->gid);
	int found = group_scan(etc, by_name ? gpart : NULL, &named, u);
	if (by_name && !found) {
		ml_err_set(e, -ENOENT, "unable to find group %s", gpart);
		user_ids_free(u);
		return -ENOENT;
	}
	if (by_name) {
		u->gid = named;
		add_group(u, named);
	}
	if (!u->home && !(u->home = strdup("/"))) {
		user_ids_free(u);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

void user_ids_free(struct user_ids *u)
{
	free(u->groups);
	free(u->name);
	free(u->home);
	memset(u, 0, sizeof(*u));
}
