#include "rpc/vmstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "rpc/sandbox.h"

int vmstate_write(const char *state_dir, const char *id, const char *image, pid_t pid,
		  const char *status, struct ml_err *e)
{
	char created[32];
	time_t now = time(NULL);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:s}", "id", id, "pid", (json_int_t)pid, "status", status,
			      "image", image, "created_at", created);
	if (!j)
		return ml_err_set(e, -ENOMEM, "out of memory");
	_cleanup_free_ char *tmp = NULL, *dst = NULL;
	if (asprintf(&tmp, "%s/vm.json.tmp", state_dir) < 0 || asprintf(&dst, "%s/vm.json", state_dir) < 0) {
		json_decref(j);
		return -ENOMEM;
	}
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = fd < 0 ? -errno : json_dumpfd(j, fd, JSON_INDENT(2)) < 0 ? -EIO : fsync(fd) < 0 ? -errno : 0;
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

static pid_t read_pid(const char *dir)
{
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/vm.json", dir) < 0)
		return -1;
	json_t *j = json_load_file(p, 0, NULL);
	json_int_t pid = j ? json_integer_value(json_object_get(j, "pid")) : 0;
	json_decref(j);
	return (pid_t)pid;
}

/* Removes one leftover file (a directory: the whole tree); appends its cleanup item name to
 * items on success, once. */
static void clean_item(const char *dir, const char *file, const char *item, char *items, size_t n)
{
	_cleanup_free_ char *p = NULL;
	struct stat st;
	if (asprintf(&p, "%s/%s", dir, file) < 0 || lstat(p, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode) ? ml_rm_rf(p) < 0 : unlink(p) < 0)
		return;
	if (strstr(items, item))
		return;
	size_t l = strlen(items);
	snprintf(items + l, n - l, "%s%s", l ? ", " : "", item);
}

static void gc_one(const char *root, const char *id, bool force, struct gc_report *rep)
{
	_cleanup_free_ char *dir = NULL;
	char line[512], items[256] = "";
	if (asprintf(&dir, "%s/%s", root, id) < 0)
		return;
	if (vmstate_owner_alive(read_pid(dir)) && !force) {
		snprintf(line, sizeof(line), "%s: skipped (VM is running)", id);
	} else {
		/* items in sorted order, as the reference prints them */
		/* a crash leaves an overlay mount's copy of a host tree behind */
		clean_item(dir, "overlay", "overlay_snapshot_remove", items, sizeof(items));
		clean_item(dir, "scratch.ext4", "scratch_remove", items, sizeof(items));
		clean_item(dir, "ctl.sock", "socket_remove", items, sizeof(items));
		clean_item(dir, "net.sock", "socket_remove", items, sizeof(items));
		clean_item(dir, "files.sock", "socket_remove", items, sizeof(items));
		if (*items)
			snprintf(line, sizeof(line), "%s: cleaned %s", id, items);
		else
			snprintf(line, sizeof(line), "%s: no resources to clean", id);
	}
	rep->reconciled++;
	if (rep->line)
		rep->line(rep->arg, line);
}

int vmstate_gc(const char *only_id, bool force, struct gc_report *rep, struct ml_err *e)
{
	_cleanup_free_ char *state = ml_state_dir(), *root = NULL;
	if (!state || asprintf(&root, "%s/vms", state) < 0)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (only_id) {
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", root, only_id) < 0)
			return -ENOMEM;
		if (access(dir, F_OK) < 0)
			return ml_err_set(e, -ENOENT, "VM %s not found", only_id);
		gc_one(root, only_id, force, rep);
		return 0;
	}
	_cleanup_closedir_ DIR *d = opendir(root);
	if (!d)
		return errno == ENOENT ? 0 : ml_err_set(e, -errno, "open %s: %s", root, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vm-", 3))
			gc_one(root, de->d_name, force, rep);
	return 0;
}
