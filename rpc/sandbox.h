/* rpc/sandbox.h - one sandbox: image -> rootfs -> scratch disk -> VM -> agent ready.
 * Composes oci/, ext4/ and vmm/; used by `run` (cli/) and later by the JSON-RPC server. */
#ifndef ML_RPC_SANDBOX_H
#define ML_RPC_SANDBOX_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/loop.h"
#include "disk/disk.h"
#include "oci/oci.h"
#include "vmm/vmm.h"

#define SANDBOX_DEFAULT_IMAGE "matchlock/default:latest"

struct sandbox_publish {
	struct in_addr addr;
	int host_port, guest_port;
};

struct sandbox_opts {
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
	bool block_private_ips;  /* refuse private-range destinations (rpc.md §7.5) */
	const struct sandbox_publish *publish;  /* -p forwards, bound before the guest boots */
	size_t n_publish;
	const struct disk_spec *disks;  /* extra disks (checked with disk_spec_parse/_check); */
	size_t n_disks;                 /* locked for the VM's life, mounted before READY */
	int boot_timeout_s;      /* 0 = default (60 s, or $MATCHLOCK_BOOT_TIMEOUT) */
	/* Called (from the loop) if the VM dies or the channel breaks after boot. */
	void (*on_dead)(void *arg, const char *msg);
	/* Answers to ctl_ping (benchmarks). */
	void (*on_pong)(void *arg, const uint8_t *data, size_t len);
	void *arg;
};

struct sandbox;
/* Resolves the image (importing the embedded default image on first use), builds its rootfs
 * if needed (prints "Built rootfs from ..." to stderr then), creates the VM state dir
 * (~/.matchlock/vms/<id>, 0700) and scratch disk, boots the VM, and runs `loop` until the agent
 * is ready. On return the sandbox's fds stay registered in the loop. */
int sandbox_create(const struct sandbox_opts *o, struct ml_loop *loop, struct sandbox **out,
		   struct ml_err *e);
const char *sandbox_id(const struct sandbox *sb);
const struct oci_config *sandbox_image_config(const struct sandbox *sb);
struct ctl *sandbox_ctl(struct sandbox *sb);
int sandbox_log_fd(const struct sandbox *sb);
const char *sandbox_console_tail(struct sandbox *sb);
/* Stops the VM and frees everything; with remove_state also deletes the VM's state dir.
 * NULL-safe. The VM is killed (the scratch disk is throw-away), except when it has writable
 * extra disks: then its agent powers it off first (up to 10 s), so that what the guest wrote
 * reaches them. */
void sandbox_destroy(struct sandbox *sb, bool remove_state);

/* Directories (malloc'd): $XDG_CACHE_HOME/matchlock or ~/.cache/matchlock; ~/.matchlock. */
char *ml_cache_dir(void);
char *ml_state_dir(void);
/* <cache>/volumes (named volumes) and <state>/disks (who holds which disk), malloc'd. */
char *ml_volumes_dir(void);
char *ml_disk_holders_dir(void);
/* Opens the user's image store (creating ~/.cache/matchlock 0700 if needed). */
int ml_store_open(struct oci_store **out, struct ml_err *e);
/* mkdir -p with mode for every created component. */
int ml_mkdir_p(const char *path, mode_t mode);
/* rm -rf of a directory we own (does not follow symlinks). */
int ml_rm_rf(const char *path);

#endif
