/* vmm/assets.c - finds the guest's read-only files: kernel, its modules, the agent. */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "vmm/vmm.h"

static char *path_join(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* The installed layout is <prefix>/bin/matchlock next to <prefix>/lib/matchlock, and the build
 * tree mirrors it (build/bin, build/lib/matchlock), so both work without configuration. */
static int default_data_dir(char **out, struct ml_err *e)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return ml_err_set(e, -errno, "find own executable (/proc/self/exe): %s", strerror(errno));
	exe[n] = '\0';
	if (asprintf(out, "%s/../lib/matchlock", dirname(exe)) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static bool is_regular_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads the first line of a small text file (the kernel version), without its newline. */
static int read_first_line(const char *path, char **out, struct ml_err *e)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return ml_err_set(e, -errno, "read %s: %s", path, strerror(errno));
	char line[256];
	if (!fgets(line, sizeof(line), f))
		return ml_err_set(e, -EINVAL, "read %s: file is empty", path);
	line[strcspn(line, "\r\n")] = '\0';
	if (!line[0] || strchr(line, '/'))
		return ml_err_set(e, -EINVAL, "read %s: not a kernel version: \"%s\"", path, line);
	*out = strdup(line);
	return *out ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
}

static int find_paths(const struct vmm_asset_paths *p, struct vmm_assets *a, struct ml_err *e)
{
	static const struct vmm_asset_paths none;
	if (!p)
		p = &none;
	if (p->data_dir && *p->data_dir)
		a->data_dir = strdup(p->data_dir);
	else {
		int r = default_data_dir(&a->data_dir, e);
		if (r < 0)
			return r;
	}
	a->kernel = p->kernel && *p->kernel ? strdup(p->kernel) : path_join(a->data_dir, "kernel/vmlinuz");
	a->modules_dir = path_join(a->data_dir, "kernel/modules");
	a->agent = p->agent && *p->agent ? strdup(p->agent) : path_join(a->data_dir, "agent");
	if (!a->data_dir || !a->kernel || !a->modules_dir || !a->agent)
		return ml_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static int check_assets(const struct vmm_asset_paths *p, struct vmm_assets *a, struct ml_err *e)
{
	int r = find_paths(p, a, e);
	if (r < 0)
		return r;
	if (!is_regular_file(a->kernel))
		return ml_err_set(e, -ENOENT,
				  "guest kernel not found at %s: run `sh scripts/setup.sh` from the matchlock "
				  "source tree to fetch it", a->kernel);
	_cleanup_free_ char *dep = path_join(a->modules_dir, "modules.dep");
	_cleanup_free_ char *ver = path_join(a->data_dir, "kernel/version");
	if (!dep || !ver)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (!is_regular_file(dep))
		return ml_err_set(e, -ENOENT,
				  "guest kernel modules not found at %s: run `sh scripts/setup.sh` from the "
				  "matchlock source tree to fetch them", dep);
	if ((r = read_first_line(ver, &a->kver, e)) < 0)
		return r;
	if (!is_regular_file(a->agent))
		return ml_err_set(e, -ENOENT, "guest agent not found at %s: run `make`", a->agent);
	return 0;
}

int vmm_assets_paths(const struct vmm_asset_paths *p, struct vmm_assets *a, struct ml_err *e)
{
	memset(a, 0, sizeof(*a));
	int r = find_paths(p, a, e);
	if (r < 0)
		vmm_assets_free(a);
	return r;
}

int vmm_assets_find(const struct vmm_asset_paths *p, struct vmm_assets *a, struct ml_err *e)
{
	memset(a, 0, sizeof(*a));
	int r = check_assets(p, a, e);
	if (r < 0)
		vmm_assets_free(a);
	return r;
}

void vmm_assets_free(struct vmm_assets *a)
{
	if (!a)
		return;
	free(a->data_dir);
	free(a->kernel);
	free(a->modules_dir);
	free(a->kver);
	free(a->agent);
	memset(a, 0, sizeof(*a));
}
