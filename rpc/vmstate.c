/* rpc/vmstate.c - VM records (vm.json), listing with crash detection, removal, gc. The
 * lifecycle history is lifecycle.c. */
#include "rpc/vmstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "rpc/sandbox.h"

static int write_record(const char *state_dir, json_t *j, struct ml_err *e);

int vmstate_write(const char *state_dir, const char *id, const char *image, pid_t pid,
		  const char *status, const char *config_json, struct ml_err *e)
{
	char created[32];
	time_t now = time(NULL);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	json_t *cfg = config_json ? json_loads(config_json, JSON_DECODE_ANY, NULL) : NULL;
	json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:s, s:o}", "id", id, "pid", (json_int_t)pid, "status", status,
			      "image", image, "created_at", created, "config", cfg ? cfg : json_object());
	if (!j)
		return ml_err_set(e, -ENOMEM, "out of memory");
	return write_record(state_dir, j, e);
}

int vmstate_set_status(const char *state_dir, const char *status, pid_t pid, struct ml_err *e)
{
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/vm.json", state_dir) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	json_error_t je;
	json_t *j = json_load_file(p, JSON_PRESERVE_ORDER, &je);
	if (!j)
		return ml_err_set(e, -EIO, "reading %s: %s", p, je.text);
	json_object_set_new(j, "status", json_string(status));
	json_object_set_new(j, "pid", json_integer(pid));
	return write_record(state_dir, j, e);
}

/* Temp file, fsync, rename: a reader sees the old record or the new one, never half. Takes j. */
static int write_record(const char *state_dir, json_t *j, struct ml_err *e)
{
	_cleanup_free_ char *tmp = NULL, *dst = NULL;
	if (asprintf(&tmp, "%s/vm.json.%d.tmp", state_dir, (int)getpid()) < 0 || asprintf(&dst, "%s/vm.json", state_dir) < 0) {
		json_decref(j);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = fd < 0 ? -errno : json_dumpfd(j, fd, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ? -EIO
		: fsync(fd) < 0 ? -errno : 0;
	json_decref(j);
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return ml_err_set(e, r, "writing %s: %s", dst, strerror(-r));
	}
	return 0;
}

bool vmstate_owner_alive(pid_t pid)
{
	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return false;
	char path[64], comm[64] = "";
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (f && fgets(comm, sizeof(comm), f))
		comm[strcspn(comm, "\n")] = '\0';
	/* A recycled pid belongs to some other program: the VM's owner is gone. */
	return !strcmp(comm, "matchlock") || !strncmp(comm, "mlvm", 4);
}

/* ---- loading and listing ---- */
static bool valid_id(const char *id)
{
	if (strncmp(id, "vm-", 3) || strlen(id) >= sizeof(((struct vm_record *)0)->id))
		return false;
	for (const char *p = id + 3; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static long long parse_created(const char *s)
{
	struct tm tm = { 0 };
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return 0;
	return (long long)timegm(&tm);
}

static int load_dir(const char *dir, const char *id, struct vm_record *out)
{
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/vm.json", dir) < 0)
		return -ENOMEM;
	json_t *j = json_load_file(p, JSON_PRESERVE_ORDER, NULL);
	if (!j)
		return access(dir, F_OK) == 0 ? -EIO : -ENOENT;
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", id);
	const char *st = json_string_value(json_object_get(j, "status"));
	snprintf(out->status, sizeof(out->status), "%s", st ? st : "unknown");
	out->pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
	out->created = parse_created(json_string_value(json_object_get(j, "created_at")));
	out->json = j;
	out->dir = strdup(dir);
	if (!out->dir) {
		json_decref(j);
		return -ENOMEM;
	}
	/* a running VM whose owner died is crashed, and stays so */
	if (!strcmp(out->status, "running") && !vmstate_owner_alive(out->pid)) {
		struct ml_err e;
		snprintf(out->status, sizeof(out->status), "crashed");
		json_object_set_new(j, "status", json_string("crashed"));
		if (vmstate_set_status(dir, "crashed", out->pid, &e) == 0)
			vmstate_phase(dir, id, "stop_failed", "the VM's owner process is gone");
	}
	return 0;
}

int vmstate_load(const char *root, const char *id, struct vm_record *out, struct ml_err *e)
{
	_cleanup_free_ char *dir = NULL;
	if (!valid_id(id))
		return ml_err_set(e, -ENOENT, "VM %s not found", id);
	if (asprintf(&dir, "%s/vms/%s", root, id) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int r = load_dir(dir, id, out);
	if (r == -ENOENT || r == -EIO)
		return ml_err_set(e, -ENOENT, "VM %s not found", id);
	return r < 0 ? ml_err_set(e, r, "out of memory") : 0;
}

void vm_record_free(struct vm_record *r)
{
	if (!r)
		return;
	json_decref(r->json);
	free(r->dir);
	memset(r, 0, sizeof(*r));
}

void vm_records_free(struct vm_record *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		vm_record_free(&v[i]);
	free(v);
}

static int newest_first(const void *a, const void *b)
{
	const struct vm_record *x = a, *y = b;
	if (x->created != y->created)
		return x->created > y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

int vmstate_list(const char *root, struct vm_record **out, size_t *n, struct ml_err *e)
{
	_cleanup_free_ char *vms = NULL;
	*out = NULL;
	*n = 0;
	if (asprintf(&vms, "%s/vms", root) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	_cleanup_closedir_ DIR *d = opendir(vms);
	if (!d)
		return errno == ENOENT ? 0 : ml_err_set(e, -errno, "open %s: %s", vms, strerror(errno));
	struct vm_record *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!valid_id(de->d_name))
			continue;
		if (cnt == cap) {
			struct vm_record *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!nv) {
				vm_records_free(v, cnt);
				return ml_err_set(e, -ENOMEM, "out of memory");
			}
			v = nv;
		}
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", vms, de->d_name) >= 0 && load_dir(dir, de->d_name, &v[cnt]) == 0)
			cnt++;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), newest_first);
	*out = v;
	*n = cnt;
	return 0;
}

/* ---- cleaning ---- */
/* Removes one leftover file or directory; appends its cleanup item to items on success. */
static void clean_item(const char *dir, const char *file, const char *item, char *items, size_t n)
{
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, file) < 0)
		return;
	if (unlink(p) < 0 && (errno != EISDIR || ml_rm_rf(p) < 0))
		return;
	size_t l = strlen(items);
	snprintf(items + l, n - l, "%s%s", l ? ", " : "", item);
}

/* <VM dir>/net is a symlink to slirpnet's temp dir when the state dir is too long for a
 * socket address (slirpnet.h): removes that dir first, if it is one of this user's
 * `slirpnet-*` dirs (the link itself goes as network_dir_remove). */
static void clean_linked_net_dir(const char *dir)
{
	_cleanup_free_ char *p = NULL;
	char target[PATH_MAX];
	struct stat st;
	if (asprintf(&p, "%s/net", dir) < 0)
		return;
	ssize_t n = readlink(p, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	if (base && !strncmp(base + 1, "slirpnet-", 9) && lstat(target, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid == getuid())
		ml_rm_rf(target);
}

/* What a VM's owner leaves when it dies: all inside the VM's dir. Items in sorted order, as
 * upstream prints them. */
static void clean_leftovers(const char *dir, char *items, size_t n)
{
	clean_item(dir, "ctl.sock", "control_socket_remove", items, n);
	clean_item(dir, "exec.sock", "exec_socket_remove", items, n);
	clean_item(dir, "files.sock", "files_socket_remove", items, n);
	clean_linked_net_dir(dir);
	clean_item(dir, "net", "network_dir_remove", items, n);
	clean_item(dir, "net.sock", "network_socket_remove", items, n);
	/* an overlay mount's copy of a host tree (vfs/) */
	clean_item(dir, "overlay", "overlay_snapshot_remove", items, n);
	clean_item(dir, "scratch.ext4", "scratch_remove", items, n);
}

int vmstate_remove(const char *root, const char *id, struct ml_err *e)
{
	struct vm_record rec;
	int r = vmstate_load(root, id, &rec, e);
	if (r < 0)
		return r;
	if (vmstate_owner_alive(rec.pid) && !strcmp(rec.status, "running")) {
		vm_record_free(&rec);
		return ml_err_set(e, -EBUSY, "VM is running %s", id);
	}
	char items[256] = "";
	vmstate_phase(rec.dir, id, "cleaning", NULL);
	clean_leftovers(rec.dir, items, sizeof(items));
	r = ml_rm_rf(rec.dir);
	if (r < 0)
		ml_err_set(e, r, "removing %s: %s", rec.dir, strerror(-r));
	vm_record_free(&rec);
	return r;
}

static void gc_one(const char *vms, const char *id, bool force, struct gc_report *rep)
{
	_cleanup_free_ char *dir = NULL;
	char line[512], items[256] = "";
	if (asprintf(&dir, "%s/%s", vms, id) < 0)
		return;
	struct vm_record rec;
	bool alive = load_dir(dir, id, &rec) == 0 && vmstate_owner_alive(rec.pid) && !strcmp(rec.status, "running");
	if (rec.dir)
		vm_record_free(&rec);
	if (alive && !force) {
		snprintf(line, sizeof(line), "%s: skipped (VM is running)", id);
	} else {
		clean_leftovers(dir, items, sizeof(items));
		if (*items)
			snprintf(line, sizeof(line), "%s: cleaned %s", id, items);
		else
			snprintf(line, sizeof(line), "%s: no resources to clean", id);
	}
	rep->reconciled++;
	if (rep->line)
		rep->line(rep->arg, line);
}

int vmstate_gc(const char *root, const char *only_id, bool force, struct gc_report *rep, struct ml_err *e)
{
	_cleanup_free_ char *vms = NULL;
	if (asprintf(&vms, "%s/vms", root) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (only_id) {
		_cleanup_free_ char *dir = NULL;
		if (!valid_id(only_id) || asprintf(&dir, "%s/%s", vms, only_id) < 0 || access(dir, F_OK) < 0)
			return ml_err_set(e, -ENOENT, "VM %s not found", only_id);
		gc_one(vms, only_id, force, rep);
		return 0;
	}
	_cleanup_closedir_ DIR *d = opendir(vms);
	if (!d)
		return errno == ENOENT ? 0 : ml_err_set(e, -errno, "open %s: %s", vms, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d)))
		if (valid_id(de->d_name))
			gc_one(vms, de->d_name, force, rep);
	return 0;
}
