/* cli/vms.c - the commands that look at and end VMs from any shell of their user: list (ls),
 * get, inspect (stat), kill, rm (remove), prune (gc is cli/gc.c). Output lines and messages are
 * upstream's (docs/cli-compat.md); the records are the state store's (rpc/vmstate.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "rpc/vmstate.h"

#define KILL_WAIT_MS 15000

static const char *root(void) { return cli_settings()->state_dir; }

static int no_flags(int argc, char **argv, struct strv *pos, const char *help, struct ml_err *e)
{
	struct flag t[] = { { NULL, 0, 0, NULL, NULL, NULL, false, false } };
	return args_parse_cmd(t, argc, argv, pos, help, e);
}

/* ---- list ---- */
static void fmt_created(long long t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!t || !gmtime_r(&tt, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M", &tm))
		snprintf(out, n, "-");
}

int cmd_list(int argc, char **argv, struct ml_err *e)
{
	bool running = false;
	struct flag t[] = {
		{ "running", 0, FLAG_BOOL, &running, "Show only running VMs", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "List sandboxes.\n\nUsage:\n  matchlock list [flags]\n\nAliases:\n  list, ls\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (pos.n)
		return strv_clear(&pos), ml_err_set(e, -EINVAL, "unknown command \"%s\" for \"matchlock list\"", pos.v[0]);
	struct vm_record *v;
	size_t n;
	if ((r = vmstate_list(root(), &v, &n, e)) < 0)
		return r;
	/* columns as wide as their widest cell, two spaces between */
	const char *head[5] = { "ID", "STATUS", "IMAGE", "CREATED", "PID" };
	size_t w[5];
	for (int c = 0; c < 5; c++)
		w[c] = strlen(head[c]);
	char (*cells)[5][256] = calloc(n + 1, sizeof(*cells));
	size_t rows = 0;
	for (size_t i = 0; cells && i < n; i++) {
		if (running && strcmp(v[i].status, "running"))
			continue;
		const char *img = json_string_value(json_object_get(v[i].json, "image"));
		snprintf(cells[rows][0], 256, "%s", v[i].id);
		snprintf(cells[rows][1], 256, "%s", v[i].status);
		snprintf(cells[rows][2], 256, "%s", img ? img : "-");
		fmt_created(v[i].created, cells[rows][3], 256);
		snprintf(cells[rows][4], 256, v[i].pid > 0 ? "%d" : "-", (int)v[i].pid);
		for (int c = 0; c < 5; c++)
			if (strlen(cells[rows][c]) > w[c])
				w[c] = strlen(cells[rows][c]);
		rows++;
	}
	printf("%-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], head[0], (int)w[1], head[1], (int)w[2], head[2],
	       (int)w[3], head[3], head[4]);
	for (size_t i = 0; i < rows; i++)
		printf("%-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], cells[i][0], (int)w[1], cells[i][1], (int)w[2],
		       cells[i][2], (int)w[3], cells[i][3], cells[i][4]);
	free(cells);
	vm_records_free(v, n);
	return 0;
}

/* ---- get / inspect ---- */
static int print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!s)
		return -ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int one_id(int argc, char **argv, const char *help, struct strv *pos, struct ml_err *e)
{
	int r = no_flags(argc, argv, pos, help, e);
	if (r != 0)
		return r;
	if (pos->n != 1)
		return ml_err_set(e, -EINVAL, "accepts 1 arg(s), received %zu", pos->n);
	return 0;
}

int cmd_get(int argc, char **argv, struct ml_err *e)
{
	struct strv pos = { 0 };
	int r = one_id(argc, argv, "Show a sandbox's record as JSON.\n\nUsage:\n  matchlock get <id>\n", &pos, e);
	if (r != 0)
		return r < 0 ? r : 0;
	struct vm_record rec;
	if ((r = vmstate_load(root(), pos.v[0], &rec, e)) == 0) {
		r = print_json(rec.json);
		vm_record_free(&rec);
	}
	strv_clear(&pos);
	return r;
}

int cmd_inspect(int argc, char **argv, struct ml_err *e)
{
	struct strv pos = { 0 };
	int r = one_id(argc, argv, "Show a sandbox's record and lifecycle as JSON.\n\nUsage:\n  matchlock inspect <id>\n\n"
		       "Aliases:\n  inspect, stat\n", &pos, e);
	if (r != 0)
		return r < 0 ? r : 0;
	struct vm_record rec;
	json_t *hist = NULL;
	if ((r = vmstate_load(root(), pos.v[0], &rec, e)) == 0 && (r = vmstate_history(rec.dir, &hist, e)) == 0) {
		size_t n = json_array_size(hist);
		json_t *o = json_pack("{s:O, s:O, s:O}", "vm", rec.json, "lifecycle",
				      n ? json_array_get(hist, n - 1) : json_null(), "history", hist);
		r = o ? print_json(o) : -ENOMEM;
		json_decref(o);
	}
	json_decref(hist);
	if (rec.dir)
		vm_record_free(&rec);
	strv_clear(&pos);
	return r;
}

/* ---- kill ---- */
/* SIGTERM to the owner, which closes the VM in order; wait (bounded) for it to be gone so a
 * following `rm` works. An owner already gone: its leftovers are cleaned instead. */
static int kill_one(const char *id, struct ml_err *e)
{
	struct vm_record rec;
	int r = vmstate_load(root(), id, &rec, e);
	if (r < 0)
		return r;
	if (!strcmp(rec.status, "crashed")) {
		struct gc_report rep = { 0 };
		r = vmstate_gc(root(), id, true, &rep, e);
		if (r == 0)
			r = vmstate_set_status(rec.dir, "stopped", 0, e);
		vm_record_free(&rec);
		return r;
	}
	if (rec.pid <= 0 || strcmp(rec.status, "running")) {
		vm_record_free(&rec);
		return ml_err_set(e, -ESRCH, "VM %s is not running", id);
	}
	pid_t pid = rec.pid;
	vm_record_free(&rec);
	if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
		return ml_err_set(e, -errno, "kill %d: %s", (int)pid, strerror(errno));
	for (int waited = 0; waited < KILL_WAIT_MS && vmstate_owner_alive(pid); waited += 50)
		usleep(50 * 1000);
	return 0;
}

int cmd_kill(int argc, char **argv, struct ml_err *e)
{
	bool all = false;
	struct flag t[] = {
		{ "all", 0, FLAG_BOOL, &all, "Kill every running VM", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Stop a running sandbox.\n\nUsage:\n  matchlock kill [<id>] [flags]\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (!all && pos.n == 0)
		return ml_err_set(e, -EINVAL, "VM ID required (or use --all)");
	if (!all) {
		for (size_t i = 0; i < pos.n && r == 0; i++)
			if ((r = kill_one(pos.v[i], e)) == 0)
				printf("Killed %s\n", pos.v[i]);
		strv_clear(&pos);
		return r;
	}
	struct vm_record *v;
	size_t n;
	if ((r = vmstate_list(root(), &v, &n, e)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].status, "running"))
			continue;
		struct ml_err ke = { 0 };
		if (kill_one(v[i].id, &ke) == 0)
			printf("Killed %s\n", v[i].id);
		else
			fprintf(stderr, "Failed to kill %s: %s\n", v[i].id, ke.msg);
	}
	vm_records_free(v, n);
	return 0;
}

/* ---- rm / prune ---- */
int cmd_rm(int argc, char **argv, struct ml_err *e)
{
	bool stopped = false;
	struct flag t[] = {
		{ "stopped", 0, FLAG_BOOL, &stopped, "Remove every VM that is not running", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Remove a stopped sandbox and its state.\n\nUsage:\n  matchlock rm [<id>] [flags]\n\n"
			       "Aliases:\n  rm, remove\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (!stopped && pos.n == 0)
		return ml_err_set(e, -EINVAL, "VM ID required (or use --stopped)");
	if (!stopped) {
		for (size_t i = 0; i < pos.n && r == 0; i++)
			if ((r = vmstate_remove(root(), pos.v[i], e)) == 0)
				printf("Removed %s\n", pos.v[i]);
		strv_clear(&pos);
		return r;
	}
	struct vm_record *v;
	size_t n;
	if ((r = vmstate_list(root(), &v, &n, e)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(v[i].status, "running"))
			continue;
		struct ml_err re = { 0 };
		if (vmstate_remove(root(), v[i].id, &re) == 0)
			printf("Removed %s\n", v[i].id);
		else
			fprintf(stderr, "Failed to remove %s: %s\n", v[i].id, re.msg);
	}
	vm_records_free(v, n);
	return 0;
}

int cmd_prune(int argc, char **argv, struct ml_err *e)
{
	struct strv pos = { 0 };
	int r = no_flags(argc, argv, &pos, "Remove every stopped or crashed sandbox.\n\nUsage:\n  matchlock prune\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	struct vm_record *v;
	size_t n;
	if ((r = vmstate_list(root(), &v, &n, e)) < 0)
		return r;
	int pruned = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].status, "stopped") && strcmp(v[i].status, "crashed"))
			continue;
		struct ml_err re = { 0 };
		if (vmstate_remove(root(), v[i].id, &re) == 0) {
			printf("Pruned %s\n", v[i].id);
			pruned++;
		} else {
			fprintf(stderr, "Failed to prune %s: %s\n", v[i].id, re.msg);
			failed++;
		}
	}
	printf("Pruned %d VMs\n", pruned);
	vm_records_free(v, n);
	return failed ? 1 : 0;
}
