/* rpc/vmstate.h - the VM state store: one directory per VM under ~/.matchlock/vms/<id> (0700)
 * holding its record `vm.json`, its append-only lifecycle history `lifecycle.jsonl`, its logs,
 * sockets and scratch disk. Chosen over a database because every writer owns exactly one VM's
 * files: the record is replaced atomically (temp file, fsync, rename: readers see the old or
 * the new record, never half), the history only grows by whole lines (O_APPEND, one write()
 * each; a reader skips a torn last line). Many processes (concurrent runs, `list` while VMs
 * start and stop) need no lock. A VM owns no host-global resources, so `gc` is local and
 * complete: everything a crashed supervisor left is inside its directory. */
#ifndef ML_RPC_VMSTATE_H
#define ML_RPC_VMSTATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/err.h"

/* ---- the record (vm.json) ---- */
/* Writes vm.json: id, pid, status, image, created_at, config (the effective create options as
 * JSON text, secrets redacted; NULL: {}). */
int vmstate_write(const char *state_dir, const char *id, const char *image, pid_t pid,
		  const char *status, const char *config_json, struct ml_err *e);
/* Changes the status and pid of an existing record (same atomic write). */
int vmstate_set_status(const char *state_dir, const char *status, pid_t pid, struct ml_err *e);
/* True if pid is alive and is a matchlock supervisor: its comm is "matchlock" (or one of our
 * mlvm* test tools), so a recycled pid of another program counts as gone. */
bool vmstate_owner_alive(pid_t pid);

struct vm_record {
	char id[32];
	char status[16];    /* running, stopped, crashed */
	pid_t pid;
	char *dir;          /* <root>/vms/<id> */
	json_t *json;       /* the whole record, keys in file order */
	long long created;  /* unix seconds (0 if unreadable) */
};
/* Loads <root>/vms/<id>. A `running` record whose owner is gone is rewritten as `crashed`
 * first. -ENOENT with "VM <id> not found". */
int vmstate_load(const char *root, const char *id, struct vm_record *out, struct ml_err *e);
void vm_record_free(struct vm_record *r);
/* Every VM (ids starting "vm-"), newest first, crashed ones recognized as by vmstate_load.
 * Unreadable records are skipped. Free with vm_records_free. */
int vmstate_list(const char *root, struct vm_record **out, size_t *n, struct ml_err *e);
void vm_records_free(struct vm_record *v, size_t n);

/* ---- lifecycle (lifecycle.jsonl) ---- */
/* Phases: creating created starting running stopping stopped cleaning cleaned, and the
 * failures create_failed start_failed stop_failed cleanup_failed. Appends one record if the
 * transition from the latest phase is allowed (self-transitions are); -EINVAL otherwise (the
 * history keeps its last valid phase). err: last_error, or NULL. */
int vmstate_phase(const char *state_dir, const char *id, const char *phase, const char *err);
/* The history oldest first (a JSON array, never NULL on success; a torn last line skipped). */
int vmstate_history(const char *state_dir, json_t **out, struct ml_err *e);
/* Whether `to` may follow `from` (exposed for the unit tests). */
bool vmstate_transition_ok(const char *from, const char *to);

/* ---- removal and gc ---- */
/* Deletes the VM's directory (after cleaning what it holds). Refuses a VM whose owner is
 * alive: -EBUSY, "VM is running <id>". */
int vmstate_remove(const char *root, const char *id, struct ml_err *e);

struct gc_report {
	void (*line)(void *arg, const char *text); /* one line per VM */
	void *arg;
	int reconciled;
};
/* For every VM dir (or only `only_id`): if its owner is gone, removes the resources it left
 * (scratch disk, sockets, the network's socket dir) and records the cleanup. Running VMs are
 * skipped unless force. */
int vmstate_gc(const char *root, const char *only_id, bool force, struct gc_report *rep, struct ml_err *e);

#endif
