/* rpc/vmstate.h - the per-VM record (~/.matchlock/vms/<id>/vm.json) and `gc`: what a crashed
 * supervisor left behind is found from these records and removed. A VM owns no host-global
 * resources; what it leaves lives in its state dir (scratch disk, sockets), except the private
 * socket directory slirpnet makes under $TMPDIR, which gc does not know about. */
#ifndef ML_RPC_VMSTATE_H
#define ML_RPC_VMSTATE_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/err.h"

/* Writes vm.json (temp file, fsync, rename) with the given status and pid. */
int vmstate_write(const char *state_dir, const char *id, const char *image, pid_t pid,
		  const char *status, struct ml_err *e);
/* True if pid is alive and is a matchlock supervisor: its comm is "matchlock" (or one of our
 * mlvm* test tools), so a recycled pid of another program counts as gone. */
bool vmstate_owner_alive(pid_t pid);

struct gc_report {
	void (*line)(void *arg, const char *text); /* one line per VM */
	void *arg;
	int reconciled;
};
/* For every VM dir (or only `only_id`): if its owner is gone, removes the resources it left
 * (scratch disk, control socket). Running VMs are skipped unless force. */
int vmstate_gc(const char *only_id, bool force, struct gc_report *rep, struct ml_err *e);

#endif
