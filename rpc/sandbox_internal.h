/* rpc/sandbox_internal.h - what sandbox.c (lifecycle and events), prepare.c (the worker
 * thread) and boot.c (engine and handshake on the loop) share. Not part of rpc/'s API. */
#ifndef ML_RPC_SANDBOX_INTERNAL_H
#define ML_RPC_SANDBOX_INTERNAL_H

#include <pthread.h>

#include "rpc/disks.h"
#include "rpc/net.h"
#include "rpc/sandbox.h"

enum sb_state { SB_PREPARING, SB_BOOTING, SB_READY, SB_FAILED };

#define SB_PROGRESS_MAX 8

/* What the worker hands to the loop: progress lines (bounded; a step posts at most one each),
 * then "done" with its result. Guarded by mu; the pipe only wakes the loop. */
struct sb_mailbox {
	pthread_mutex_t mu;
	int wake[2];                     /* worker writes [1], the loop watches [0] */
	struct { enum sandbox_step step; char line[256]; } progress[SB_PROGRESS_MAX];
	size_t n_progress;
	bool done;
};

/* The worker's results, read by the loop only after `done`. */
struct sb_prepared {
	int r;
	struct ml_err err;
	char *rootfs, *scratch, *initrd;
};

struct sandbox {
	char id[16];
	const struct sandbox_config *cfg;
	const struct sandbox_events *ev;
	void *arg;
	struct ml_loop *loop;
	enum sb_state state;
	volatile int cancel;             /* set by sandbox_cancel/destroy, read by the worker */

	/* preparation (worker thread) */
	pthread_t worker;
	bool worker_running;
	struct sb_mailbox box;
	struct sb_prepared prep;

	/* shared once the worker is done */
	char *state_dir;
	struct oci_image *img;
	struct vmm_assets assets;
	struct ml_logger *log;
	struct vfs *vfs;                 /* the workspace, or NULL */

	/* boot and life (loop thread) */
	struct vmm *vm;
	struct ctl *ctl;
	struct net *net;
	struct sandbox_disks *disks;     /* locked by the worker first thing; released after the engine */
	struct proto_config pcfg;

	/* interception (intercept.c): made by the worker, read by the loop and the network */
	bool intercept;
	char *ca_pem, *ca_cert;          /* the per-user CA (key included / certificate only) */
	char *audit_path;                /* <state_dir>/egress.jsonl */
	struct mitm_intercept icpt;
	char **guest_env;                /* sandbox_guest_env */
	int boot_timer;
	int boot_secs;
	bool configured;                 /* HELLO came: the agent can also power the guest off */
	bool dead;
};

/* prepare.c: the worker thread's body; posts progress, fills sb->prep/img/assets/state_dir/log. */
void *sb_prepare_main(void *arg);
void sb_post_progress(struct sandbox *sb, enum sandbox_step step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* intercept.c: whether this sandbox intercepts (the protocol's rule), the CA and the guest's extra
 * environment (worker thread), the mitm config (loop), cleanup. */
bool sb_intercept_wanted(const struct sandbox_config *c);
int sb_intercept_prepare(struct sandbox *sb, struct ml_err *e);
const struct mitm_intercept *sb_intercept_config(struct sandbox *sb);
void sb_intercept_free(struct sandbox *sb);

/* boot.c: on the loop thread, once preparation succeeded. */
int sb_boot_start(struct sandbox *sb, struct ml_err *e);
/* boot.c: creation failed or was cancelled: report it once (failed event). */
void sb_fail(struct sandbox *sb, const struct ml_err *e);
void sb_boot_teardown(struct sandbox *sb);

#endif
