/* rpc/lifecycle.c - a VM's lifecycle history (lifecycle.jsonl): one JSON record per phase
 * change, appended with a single write() on an O_APPEND fd so concurrent readers see whole
 * lines (a torn last line, after a crash mid-write, is skipped). Transitions are checked
 * against the table below; a refused one is not written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "rpc/vmstate.h"

#define HISTORY_MAX_BYTES (1u << 20)

struct transition {
	const char *from;
	const char *to[5];
};

static const struct transition table[] = {
	{ "creating", { "created", "create_failed", "cleaning" } },
	{ "created", { "starting", "stopping", "cleaning" } },
	{ "starting", { "running", "start_failed", "stopping", "cleaning" } },
	{ "running", { "stopping", "cleaning" } },
	{ "stopping", { "stopped", "stop_failed", "cleaning" } },
	{ "stopped", { "cleaning", "cleaned" } },
	{ "cleaning", { "cleaned", "cleanup_failed" } },
	{ "create_failed", { "cleaning", "cleanup_failed" } },
	{ "start_failed", { "stopping", "cleaning", "cleanup_failed" } },
	{ "stop_failed", { "cleaning", "cleanup_failed" } },
	{ "cleanup_failed", { "cleaning", "cleaned" } },
	{ "cleaned", { NULL } },
};

bool vmstate_transition_ok(const char *from, const char *to)
{
	if (!from)
		return !strcmp(to, "creating");
	if (!strcmp(from, to))
		return true;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(table[i].from, from))
			continue;
		for (size_t j = 0; j < 5 && table[i].to[j]; j++)
			if (!strcmp(table[i].to[j], to))
				return true;
		return false;
	}
	return false;
}

static char *history_path(const char *dir)
{
	char *p = NULL;
	return asprintf(&p, "%s/lifecycle.jsonl", dir) < 0 ? NULL : p;
}

int vmstate_history(const char *state_dir, json_t **out, struct ml_err *e)
{
	_cleanup_free_ char *p = history_path(state_dir);
	*out = json_array();
	if (!p || !*out)
		return ml_err_set(e, -ENOMEM, "out of memory");
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	if (!f)
		return errno == ENOENT ? 0 : ml_err_set(e, -errno, "open %s: %s", p, strerror(errno));
	char line[8192];
	size_t total = 0;
	while (fgets(line, sizeof(line), f) && total < HISTORY_MAX_BYTES) {
		total += strlen(line);
		if (!strchr(line, '\n'))
			break; /* torn or overlong: not a record */
		json_t *j = json_loads(line, 0, NULL);
		if (json_is_object(j))
			json_array_append_new(*out, j);
		else
			json_decref(j);
	}
	return 0;
}

static json_t *latest(const char *dir)
{
	json_t *h = NULL;
	struct ml_err e;
	if (vmstate_history(dir, &h, &e) < 0)
		return NULL;
	size_t n = json_array_size(h);
	json_t *last = n ? json_incref(json_array_get(h, n - 1)) : NULL;
	json_decref(h);
	return last;
}

int vmstate_phase(const char *state_dir, const char *id, const char *phase, const char *err)
{
	json_t *prev = latest(state_dir);
	const char *from = prev ? json_string_value(json_object_get(prev, "phase")) : NULL;
	if (!vmstate_transition_ok(from, phase)) {
		json_decref(prev);
		return -EINVAL;
	}
	json_int_t version = prev ? json_integer_value(json_object_get(prev, "version")) + 1 : 1;
	json_decref(prev);
	char when[32];
	time_t now = time(NULL);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	json_t *rec = json_pack("{s:I, s:s, s:s, s:s, s:s, s:{s:s}, s:{}}", "version", version, "vm_id", id,
				"backend", "qemu-microvm", "phase", phase, "updated_at", when, "resources",
				"state_dir", state_dir, "cleanup");
	if (!rec)
		return -ENOMEM;
	if (err && *err)
		json_object_set_new(rec, "last_error", json_string(err));
	_cleanup_free_ char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(rec);
	_cleanup_free_ char *p = history_path(state_dir);
	if (!line || !p)
		return -ENOMEM;
	size_t n = strlen(line);
	char *l2 = realloc(line, n + 2);
	if (!l2)
		return -ENOMEM;
	line = l2;
	line[n] = '\n';
	line[n + 1] = '\0';
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	return write(fd, line, n + 1) == (ssize_t)(n + 1) ? 0 : -EIO;
}
