/* rpc/sandbox.h - one sandbox comes to life through events: image -> rootfs -> scratch disk ->
 * VM -> agent ready. Composes oci/, ext4/, vmm/ and the network (net.h). `run`, `rpc` and a
 * detached VM are callers of this one API.
 *
 * sandbox_start() returns at once. The slow preparation (pull, rootfs build, scratch disk,
 * initramfs) runs on a worker thread; the engine is started and the boot handshake (HELLO,
 * CONFIG, READY) is driven on the caller's loop, so the caller keeps serving its own fds (an
 * rpc server keeps reading requests and `cancel`s) while a VM comes up. Outcomes arrive as
 * events on the loop thread. Library code prints nothing: user-facing progress lines are
 * events; diagnostics go to the sandbox's own logger (its vm.log). */
#ifndef ML_RPC_SANDBOX_H
#define ML_RPC_SANDBOX_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/logfile.h"
#include "base/loop.h"
#include "mitm/mitm.h"
#include "disk/disk.h"
#include "oci/oci.h"
#include "rpc/settings.h"
#include "vfs/vfs.h"
#include "vmm/vmm.h"

#define SANDBOX_DEFAULT_IMAGE "matchlock/default:latest"

struct sandbox_publish {
	struct in_addr addr;
	int host_port, guest_port;
};

/* Everything a sandbox is made from. Owned by the caller and must stay valid (unchanged)
 * until sandbox_destroy: the worker thread and the network read it. */
struct sandbox_config {
	const struct ml_settings *settings; /* paths and knobs (from the environment, by main) */
	const char *image;       /* reference as the user typed it */
	bool pull;               /* pull again even if the image is in the store (`run --pull`) */
	double cpus;             /* may be fractional: ceil() vCPUs plus a cgroup quota */
	unsigned mem_mb;
	uint64_t disk_mb;
	const char *hostname;    /* NULL = the VM id */
	char **dns;              /* NULL-terminated nameserver addresses */
	char **hosts;            /* NULL-terminated "ip host" lines for /etc/hosts */
	bool network;            /* false: no NIC at all (--no-network) */
	unsigned mtu;
	char **allow_hosts;      /* NULL-terminated --allow-host globs (NULL: all hosts) */
	bool block_private_ips;  /* refuse private-range destinations (mitm/README.md) */
	/* Interception (mitm/README.md "Interception"): on when allow_hosts has an entry, there
	 * are secrets or rules, or intercept is set (--network-intercept). Placeholders are the
	 * caller's (mitm_placeholder_new, or given over rpc); the values never reach the guest. */
	bool intercept;
	const struct mitm_secret *secrets;
	size_t n_secrets;
	const struct mitm_rules *rules;      /* hook rules (mitm_rules_parse), NULL: none */
	const char *callback_socket;         /* the SDK's hook socket, NULL: none */
	const struct sandbox_publish *publish;  /* -p forwards, bound before the guest boots */
	size_t n_publish;
	const struct disk_spec *disks;  /* extra disks, checked by the caller (disk_spec_parse or
					 * disk_spec_check); locked for the VM's life, mounted before READY */
	size_t n_disks;
	int boot_timeout_s;      /* 0 = settings->boot_timeout_s */
	const char *record_json; /* the options as the VM's record shows them (`get`), or NULL */
	/* The workspace (NULL: none): mounts opened and overlay snapshots taken while preparing,
	 * served over the files channel from boot. Its owner defaults to the image's USER. */
	const struct vfs_config *vfs;
};

/* Where creation is; the progress event says which step starts (text: a line for the user). */
enum sandbox_step { SANDBOX_STEP_PULL, SANDBOX_STEP_PULLED, SANDBOX_STEP_ROOTFS_BUILT, SANDBOX_STEP_BOOT };

struct sandbox;
/* Called on the loop thread. A callback must not call sandbox_destroy on its own sandbox
 * (stop the loop, or defer with a 0 ms timer). */
struct sandbox_events {
	/* A step of creation; line is what a terminal user would be shown (e.g. "Pulling x...",
	 * "Built rootfs from x (2.2 MB)"). May be NULL. */
	void (*progress)(void *arg, struct sandbox *sb, enum sandbox_step step, const char *line);
	/* The agent is ready for execs. */
	void (*ready)(void *arg, struct sandbox *sb);
	/* Creation failed (or was cancelled: e->code == -ECANCELED); the caller destroys sb. */
	void (*failed)(void *arg, struct sandbox *sb, const struct ml_err *e);
	/* After ready: the VM died or its channel broke. */
	void (*dead)(void *arg, struct sandbox *sb, const char *msg);
	/* Answers to sandbox ctl_ping (benchmarks). May be NULL. */
	void (*pong)(void *arg, const uint8_t *data, size_t len);
};

/* Allocates the sandbox (its id is known at once), starts preparation, and returns. On error
 * (bad config, out of memory, thread) nothing was started and *out is untouched. */
int sandbox_start(const struct sandbox_config *c, struct ml_loop *loop, const struct sandbox_events *ev,
		  void *arg, struct sandbox **out, struct ml_err *e);
/* Replaces the event callbacks (e.g. once creation is over and its context is gone). */
int sandbox_set_events(struct sandbox *sb, const struct sandbox_events *ev, void *arg);
/* Stops creation early: a pull in flight is aborted, the boot is not waited for; `failed`
 * follows with -ECANCELED. No effect once ready (destroy it instead). */
void sandbox_cancel(struct sandbox *sb);

const char *sandbox_id(const struct sandbox *sb);
const char *sandbox_state_dir(const struct sandbox *sb);  /* ~/.matchlock/vms/<id> */
bool sandbox_is_ready(const struct sandbox *sb);
/* Whether the interception proxy serves this VM (an allow-list, secrets, rules or the
 * intercept flag; valid once prepared): runtime allow-list changes need it. */
bool sandbox_intercepts(const struct sandbox *sb);
/* Valid once ready. */
const struct oci_config *sandbox_image_config(const struct sandbox *sb);
struct ctl *sandbox_ctl(struct sandbox *sb);
/* What every exec's environment gets on top of the image's and the user's (valid once ready;
 * NULL-terminated "KEY=VALUE", owned by sb): with interception, the four CA variables
 * (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS) naming the CA file
 * in the guest, and NAME=<placeholder> for each secret. Merge it last: it wins. */
char *const *sandbox_guest_env(const struct sandbox *sb);
/* The workspace (files API, file events), or NULL without one. Valid once ready. */
struct vfs *sandbox_vfs(struct sandbox *sb);
/* The sandbox's vm.log (valid once `progress` or any later event was delivered; may be NULL
 * before the state dir exists). Command output the caller wants logged goes here. */
struct ml_logger *sandbox_logger(struct sandbox *sb);
const char *sandbox_console_tail(struct sandbox *sb);
/* After queuing control frames from outside the sandbox's own callbacks (ctl_exec,
 * ctl_exec_stdin, ...): makes sure the loop writes them out. */
void sandbox_kick(struct sandbox *sb);
/* The guest network (rpc/net.h), or NULL without a NIC. Valid once ready. */
struct net *sandbox_net(struct sandbox *sb);
/* Asks the agent to sync and power off; `dead` follows when the engine is gone. */
int sandbox_shutdown(struct sandbox *sb);

/* Stops the VM, joins the worker, frees everything; with remove_state also deletes the VM's
 * state dir (else its logs, record and history stay). NULL-safe. Blocks only while a
 * preparation step that cannot be interrupted (a rootfs build) finishes. The VM is killed (the
 * scratch disk is throw-away and is deleted), except when it has writable extra disks: then
 * its agent powers it off first (up to 10 s), so that what the guest wrote reaches them. */
void sandbox_destroy(struct sandbox *sb, bool remove_state);

/* Directories (malloc'd): $XDG_CACHE_HOME/matchlock or ~/.cache/matchlock; ~/.matchlock. */
char *ml_cache_dir(void);
char *ml_state_dir(void);
/* Opens the user's image store (creating ~/.cache/matchlock 0700 if needed). */
int ml_store_open(struct oci_store **out, struct ml_err *e);
/* mkdir -p with mode for every created component. */
int ml_mkdir_p(const char *path, mode_t mode);
/* rm -rf of a directory we own (does not follow symlinks). */
int ml_rm_rf(const char *path);

#endif
