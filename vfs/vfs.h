/* vfs/vfs.h - the host side of the guest's workspace. The guest kernel's FUSE client sends its
 * requests over the files channel (vmm's VMM_CHAN_FILES); vfs/ answers them from the mounts it
 * was given (live host directories, read-only ones, snapshot copies, in-memory trees), applies
 * block rules, and reports every intercepted operation as a file event. See vfs/README.md. */
#ifndef ML_VFS_H
#define ML_VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* ---- configuration (the CLI's -v/--workspace and the rpc `vfs` object) ---- */
enum vfs_mount_type {
	VFS_MOUNT_MEMORY,  /* an empty tree held in the supervisor */
	VFS_MOUNT_HOST_FS, /* a live host directory or file (read-only with `readonly`) */
	VFS_MOUNT_OVERLAY, /* a copy of the host path taken at start; writes stay in the copy */
};

struct vfs_mount_cfg {
	char *guest_path;   /* absolute and clean, equal to or under the workspace */
	enum vfs_mount_type type;
	char *host_path;    /* absolute (host_fs, overlay); NULL for memory */
	bool readonly;
	bool upper_lower;   /* rpc: `upper` or `lower` was given (refused for overlay) */
};

/* Operations as rules and events name them (rpc VFSHookRule ops, file event op). */
enum vfs_op {
	VFS_OP_STAT, VFS_OP_READDIR, VFS_OP_OPEN, VFS_OP_CREATE, VFS_OP_MKDIR, VFS_OP_CHMOD,
	VFS_OP_REMOVE, VFS_OP_REMOVE_ALL, VFS_OP_RENAME, VFS_OP_SYMLINK, VFS_OP_READLINK,
	VFS_OP_READ, VFS_OP_WRITE, VFS_OP_CLOSE, VFS_OP_SYNC, VFS_OP_TRUNCATE, VFS_OP_COUNT
};
const char *vfs_op_name(enum vfs_op op);
/* Case-insensitive, with the aliases read_dir and removeall; -1 when unknown. */
int vfs_op_parse(const char *s);

/* A rule's ops list as a mask: unknown names are dropped; none known (or an empty list) gives
 * 0, which means every op. */
uint32_t vfs_ops_mask(const char *const *ops, size_t n);
/* MountConfig.type: "memory", "host_fs", "overlay"; anything else is memory, as the reference
 * says. */
enum vfs_mount_type vfs_mount_type_parse(const char *s);

enum vfs_action { VFS_ACTION_NONE, VFS_ACTION_ALLOW, VFS_ACTION_BLOCK };
/* Parses "allow"/"block"; anything else (missing, unknown) is NONE: the rule is ignored. */
enum vfs_action vfs_action_parse(const char *s);

struct vfs_rule {
	char *name;
	bool after;           /* phase "after" (only "before" block rules act) */
	uint32_t ops;         /* bit (1 << vfs_op) per op; 0 = every op */
	char *path;           /* shell glob on the full guest path ('*' stops at '/'); NULL = any */
	enum vfs_action action;
	int timeout_ms;
};

struct vfs_config {
	char *workspace;               /* guest mount point of the whole tree */
	struct vfs_mount_cfg *mounts;
	size_t n_mounts;
	bool interception;             /* the rpc `vfs.interception` object was present */
	struct vfs_rule *rules;
	size_t n_rules;
	bool emit_events;
	/* Who owns, as the guest sees it, the files whose guest ownership was never set: a user
	 * spec (uid, uid:gid, name) the agent resolves against the image; NULL = root. */
	char *owner;
	uint64_t memory_limit;         /* bytes all memory mounts may hold (0 = 256 MiB) */
	unsigned workers;              /* request workers (0 = 4) */
};

/* `-v host:guest[:opt]` (cli §5.1), guest path resolved against workspace. Errors are the whole
 * line: `invalid volume mount "<spec>": <reason>`. The host path must exist and be readable. */
int vfs_volume_parse(const char *spec, const char *workspace, struct vfs_mount_cfg *out,
		     struct ml_err *e);
/* Adds m (taking its strings); a mount at the same guest path replaces the earlier one. */
int vfs_config_add_mount(struct vfs_config *c, struct vfs_mount_cfg *m);
/* The rpc create checks (§7.4), each message exact, prefixed "invalid configuration: ". */
int vfs_config_validate(const struct vfs_config *c, struct ml_err *e);
/* The workspace path rule alone: `^/[a-zA-Z0-9/_.-]+$`. */
bool vfs_guest_path_valid(const char *p);
/* Lexical clean as Go's path.Clean: "//a/./b/../c/" -> "/a/c". out gets at most n bytes. */
int vfs_path_clean(const char *in, char *out, size_t n);
void vfs_mount_cfg_free(struct vfs_mount_cfg *m);
void vfs_rule_free(struct vfs_rule *r);
void vfs_config_free(struct vfs_config *c);

/* ---- one VM's workspace ---- */
struct vfs;
/* Opens every mount's host root (a clear error if missing or unreadable), takes the overlay
 * snapshots into <state_dir>/overlay/mount-NNN and builds the tree (missing parents are
 * synthesized). Copies what it needs from c. */
int vfs_new(const struct vfs_config *c, const char *state_dir, struct vfs **out, struct ml_err *e);
/* Serves the files channel fd (not owned; vfs makes it blocking: it is its only user) on
 * worker threads until vfs_stop. */
int vfs_start(struct vfs *v, int fd, struct ml_err *e);
/* Stops the workers (shutdown(2) of the channel wakes them) and joins them. Idempotent. */
void vfs_stop(struct vfs *v);
/* Stops, removes the overlay snapshots, frees. NULL-safe. */
void vfs_free(struct vfs *v);
const char *vfs_workspace(const struct vfs *v);
/* The owner spec for the guest (vfs_config.owner), NULL = root. */
const char *vfs_owner_spec(const struct vfs *v);

struct vfs_stats {
	uint64_t requests, errors, blocked, max_inflight, events, events_dropped;
	uint64_t nodes, handles;
};
void vfs_get_stats(struct vfs *v, struct vfs_stats *s);

/* ---- file events (rpc `event` with type "file": timestamp = time_ms, file.op = vfs_op_name,
 * file.path, file.size, file.mode = vfs_go_mode(mode), uid, gid; mode/uid/gid left out when 0)
 * ---- */
struct vfs_event {
	enum vfs_op op;
	char path[4096];      /* full guest path */
	uint64_t size;        /* bytes read or written */
	uint32_t mode;        /* POSIX st_mode after the op (vfs_go_mode for the wire), 0 = unknown */
	uint32_t uid, gid;    /* as the guest sees them */
	int64_t time_ms;      /* unix milliseconds */
};
/* Readable (an eventfd) while events are queued; -1 when the config asks for none. The queue is
 * bounded: when full, new events are dropped and counted. */
int vfs_events_fd(struct vfs *v);
/* Pops the oldest event: true, or false when the queue is empty (and clears the fd). */
bool vfs_event_next(struct vfs *v, struct vfs_event *ev);
/* POSIX st_mode -> Go os.FileMode bits (type bits high, permission and special bits). */
uint32_t vfs_go_mode(uint32_t posix_mode);

/* ---- files API (rpc write_file / read_file / list_files), through the same tree, rules and
 * events as the guest's own requests. Paths are absolute guest paths under the workspace.
 * Error messages read like the guest's: "open /workspace/x: operation not permitted" (the rpc
 * server prefixes "guest file operation: "). Thread-safe; vfs_write_file waits (2 s at most)
 * for the guest kernel to drop what it cached, so call it off the event loop. ---- */
bool vfs_covers(const struct vfs *v, const char *guest_path);
/* Creates missing parents (0755), writes the file (mode applies when it is created). */
int vfs_write_file(struct vfs *v, const char *path, const void *data, size_t len, uint32_t mode,
		   struct ml_err *e);
#define VFS_READ_FILE_MAX (16u << 20)
/* Regular files only, at most VFS_READ_FILE_MAX bytes. *data is malloc'd. */
int vfs_read_file(struct vfs *v, const char *path, uint8_t **data, size_t *len, struct ml_err *e);
struct vfs_file_info {
	char *name;
	int64_t size;
	uint32_t mode;   /* POSIX st_mode */
	bool is_dir;
};
/* Entries sorted by name, without . and ..; *out is malloc'd (free with vfs_file_infos_free). */
int vfs_list_files(struct vfs *v, const char *path, struct vfs_file_info **out, size_t *n,
		   struct ml_err *e);
void vfs_file_infos_free(struct vfs_file_info *f, size_t n);

#endif
