/* vmm/modules.c - which kernel module files the guest needs, in load order.
 *
 * Debian's cloud kernel has its virtio drivers as modules, so the initramfs carries them and the
 * agent loads them before anything else. modules.dep (written by depmod) has one line per module:
 * "path/to/a.ko: path/to/dep1.ko path/to/dep2.ko". We take the closure of the modules we need
 * and order it so every module comes after its dependencies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "vmm/vmm_internal.h"

/* virtio_mmio: the transport (found through ACPI); blk: rootfs + scratch; console: the control
 * port; net: the NIC; overlay: the writable root; virtio_rng: entropy for the guest's getrandom.
 * The closure adds virtio, virtio_ring, failover and net_failover. */
const char *const vmm_needed_modules[] = {
	"virtio_mmio", "virtio_blk", "virtio_console", "virtio_net", "overlay", "virtio_rng", "fuse", NULL,
};

#define MODULES_DEP_MAX (32u << 20)

struct mod {
	char *path;    /* relative to the modules dir, points into the file buffer */
	char name[64]; /* basename without .ko*, '-' folded to '_' */
	char **deps;   /* paths, points into the file buffer */
	size_t ndeps;
	int state;     /* 0 unvisited, 1 on the stack (cycle check), 2 emitted */
};

struct moddb {
	char *text;
	struct mod *mods;
	size_t n;
	char **order; /* result, NULL-terminated, strdup'd */
	size_t norder;
};

static void moddb_free(struct moddb *db)
{
	for (size_t i = 0; i < db->n; i++)
		free(db->mods[i].deps);
	free(db->mods);
	free(db->text);
	strv_free(db->order);
}

/* "kernel/drivers/char/hw_random/virtio-rng.ko" -> "virtio_rng", as modprobe matches names. */
static void module_name(const char *path, char *out, size_t outlen)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strcspn(base, ".");
	if (n >= outlen)
		n = outlen - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = base[i] == '-' ? '_' : base[i];
	out[n] = '\0';
}

static int read_text(const char *path, char **out, struct ml_err *e)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return ml_err_set(e, -errno, "read %s: %s", path, strerror(errno));
	_cleanup_free_ char *buf = malloc(MODULES_DEP_MAX + 1);
	if (!buf)
		return ml_err_set(e, -ENOMEM, "out of memory");
	size_t n = fread(buf, 1, MODULES_DEP_MAX + 1, f);
	if (ferror(f))
		return ml_err_set(e, -EIO, "read %s: I/O error", path);
	if (n > MODULES_DEP_MAX)
		return ml_err_set(e, -EFBIG, "read %s: larger than %u bytes", path, MODULES_DEP_MAX);
	buf[n] = '\0';
	*out = steal_ptr(&buf);
	return 0;
}

static int parse_line(struct mod *m, char *line)
{
	char *colon = strchr(line, ':');
	if (!colon)
		return -EINVAL;
	*colon = '\0';
	m->path = line;
	module_name(line, m->name, sizeof(m->name));
	char *save = NULL;
	for (char *tok = strtok_r(colon + 1, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char **d = realloc(m->deps, (m->ndeps + 1) * sizeof(*d));
		if (!d)
			return -ENOMEM;
		m->deps = d;
		m->deps[m->ndeps++] = tok;
	}
	return 0;
}

static int moddb_load(struct moddb *db, const char *modules_dir, struct ml_err *e)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/modules.dep", modules_dir) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int r = read_text(path, &db->text, e);
	if (r < 0)
		return r;
	char *save = NULL;
	for (char *line = strtok_r(db->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!line[0] || line[0] == '#')
			continue;
		struct mod *m = realloc(db->mods, (db->n + 1) * sizeof(*m));
		if (!m)
			return ml_err_set(e, -ENOMEM, "out of memory");
		db->mods = m;
		memset(&db->mods[db->n], 0, sizeof(*m));
		r = parse_line(&db->mods[db->n++], line);
		if (r < 0)
			return ml_err_set(e, r, "%s: malformed line \"%.80s\"", path, line);
	}
	return 0;
}

static struct mod *find_by_name(struct moddb *db, const char *name)
{
	char want[64];
	module_name(name, want, sizeof(want));
	for (size_t i = 0; i < db->n; i++)
		if (!strcmp(db->mods[i].name, want))
			return &db->mods[i];
	return NULL;
}

static struct mod *find_by_path(struct moddb *db, const char *path)
{
	for (size_t i = 0; i < db->n; i++)
		if (!strcmp(db->mods[i].path, path))
			return &db->mods[i];
	return NULL;
}

static int emit(struct moddb *db, const struct mod *m)
{
	char **o = realloc(db->order, (db->norder + 2) * sizeof(*o));
	if (!o)
		return -ENOMEM;
	db->order = o;
	if (!(o[db->norder] = strdup(m->path)))
		return -ENOMEM;
	o[++db->norder] = NULL;
	return 0;
}

/* Depth-first: dependencies are emitted before the module. depmod lists a module's deps so that
 * the last one has to load first, so walk them from the end; the recursion makes the order
 * right either way. */
static int visit(struct moddb *db, struct mod *m, struct ml_err *e)
{
	if (m->state == 2)
		return 0;
	if (m->state == 1)
		return ml_err_set(e, -ELOOP, "modules.dep: dependency cycle through %s", m->path);
	m->state = 1;
	for (size_t i = m->ndeps; i-- > 0;) {
		struct mod *d = find_by_path(db, m->deps[i]);
		if (!d)
			return ml_err_set(e, -ENOENT, "modules.dep: %s needs %s, which has no entry",
					  m->path, m->deps[i]);
		int r = visit(db, d, e);
		if (r < 0)
			return r;
	}
	m->state = 2;
	return emit(db, m) < 0 ? ml_err_set(e, -ENOMEM, "out of memory") : 0;
}

int vmm_modules_closure(const char *modules_dir, const char *const *names, char ***paths,
			struct ml_err *e)
{
	struct moddb db = { 0 };
	int r = moddb_load(&db, modules_dir, e);
	for (size_t i = 0; r == 0 && names[i]; i++) {
		struct mod *m = find_by_name(&db, names[i]);
		if (!m)
			r = ml_err_set(e, -ENOENT, "kernel module %s not found in %s/modules.dep",
				       names[i], modules_dir);
		else
			r = visit(&db, m, e);
	}
	if (r == 0 && !db.order)
		r = ml_err_set(e, -EINVAL, "no kernel modules asked for");
	if (r == 0)
		*paths = steal_ptr(&db.order);
	moddb_free(&db);
	return r;
}
