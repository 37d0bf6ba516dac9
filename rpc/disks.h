/* rpc/disks.h - a sandbox's extra disks (named volumes, --disk files, rpc extra_disks): locked
 * for this VM, handed to the engine and the agent, and released after the engine is gone.
 * Internal to rpc/ (sandbox.c composes it). */
#ifndef ML_RPC_DISKS_H
#define ML_RPC_DISKS_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/proto.h"
#include "base/err.h"
#include "disk/disk.h"
#include "vmm/vmm.h"

struct sandbox_disks;
/* Locks every disk for vm_id (refusing one another sandbox uses, naming it) and names them
 * for the guest (serials disk0, disk1, ...). n = 0 gives an empty set. */
int sandbox_disks_attach(const struct disk_spec *d, size_t n, const char *vm_id, const char *holders_dir,
			 struct sandbox_disks **out, struct ml_err *e);
/* The engine's drives for them (valid while the set lives). */
const struct vmm_drive *sandbox_disks_drives(const struct sandbox_disks *s, size_t *n);
/* Adds one CFG_DISK per disk to the guest's config. */
int sandbox_disks_config(const struct sandbox_disks *s, struct proto_config *cfg, struct ml_err *e);
/* Does any disk keep what the guest writes (so the guest must be stopped, not killed)? */
bool sandbox_disks_writable(const struct sandbox_disks *s);
/* Unlocks and frees; call once the engine has exited. NULL-safe. */
void sandbox_disks_release(struct sandbox_disks *s);

/* Asks the agent to power the guest off (it kills every process, unmounts the extra disks and
 * syncs) and waits for the engine to exit, at most timeout_ms. Writes still in the guest's page
 * cache would be lost by a kill. 0 when the engine exited by itself. */
int sandbox_guest_poweroff(struct ctl *ctl, struct vmm *vm, int timeout_ms);

#endif
