/* vfs/internal.h - what the files of vfs/ share with each other (and the unit tests and fuzz
 * target), not with the rest of matchlock: the request decoder, the node tree, the two storage
 * backends, rules and events, the channel. */
#ifndef ML_VFS_INTERNAL_H
#define ML_VFS_INTERNAL_H

#include <linux/fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "agent/proto.h"
#include "vfs/vfs.h"

/* ---- the files channel: FUSE's own messages, plus two of ours (agent/PROTOCOL.md) ---- */
#define VFS_MAX_WRITE   (1u << 20)          /* negotiated max_write and max_read */
#define VFS_REQ_MAX     (VFS_MAX_WRITE + 4096u) /* largest request a well-behaved kernel sends */
#define VFS_HDR_LEN     ((uint32_t)sizeof(struct fuse_in_header))
#define VFS_OUT_HDR_LEN ((uint32_t)sizeof(struct fuse_out_header))
/* our own messages on the channel (agent/proto.h, agent/PROTOCOL.md) */
#define VFS_AGENT_HELLO    FILES_AGENT_HELLO
#define VFS_AGENT_SYNC_ACK FILES_AGENT_SYNC_ACK
#define VFS_NOTIFY_SYNC    FILES_NOTIFY_SYNC
#define VFS_AGENT_VERSION  FILES_AGENT_VERSION
#define VFS_MIN_MINOR      27u  /* FUSE 7.27 (Linux 4.20): what our replies assume */

/* A request decoded from the channel. Pointers point into the caller's buffer; the fixed-size
 * argument is copied (the buffer need not be aligned). */
struct vfs_req {
	struct fuse_in_header h;
	union {
		struct fuse_init_in init;
		struct fuse_forget_in forget;
		struct fuse_getattr_in getattr;
		struct fuse_setattr_in setattr;
		struct fuse_mknod_in mknod;
		struct fuse_mkdir_in mkdir;
		struct fuse_rename2_in rename;  /* RENAME fills newdir only */
		struct fuse_link_in link;
		struct fuse_open_in open;
		struct fuse_create_in create;
		struct fuse_read_in read;       /* READ, READDIR, READDIRPLUS */
		struct fuse_write_in write;
		struct fuse_release_in release;
		struct fuse_flush_in flush;
		struct fuse_fsync_in fsync;
		struct fuse_setxattr_in setxattr;
		struct fuse_getxattr_in getxattr;
		struct fuse_interrupt_in interrupt;
		struct fuse_fallocate_in fallocate;
		struct fuse_lseek_in lseek;
		struct fuse_access_in access;
		struct fuse_batch_forget_in batch;
		uint8_t raw[64];
	} in;
	const char *name;      /* entry name (validated: 1..255 bytes, no '/', not . or ..) */
	const char *name2;     /* RENAME new name; SYMLINK target (1..4095 bytes) */
	const uint8_t *data;   /* WRITE data, SETXATTR value, ext payloads, BATCH_FORGET items */
	size_t data_len;
};
/* Decodes one whole message (buf holds exactly h.len bytes). 0, or a negative errno to answer
 * it with: -ENOSYS for an opcode we do not serve, -EINVAL / -ENAMETOOLONG / -E2BIG for bad
 * arguments. Never reads outside buf. */
int vfs_req_decode(const uint8_t *buf, size_t len, struct vfs_req *r);
/* The opcodes that get no reply (FORGET, BATCH_FORGET, INTERRUPT, our ACK and HELLO). */
bool vfs_req_no_reply(uint32_t opcode);
/* A name from the guest for one directory entry: 0 or -EINVAL/-ENAMETOOLONG. */
int vfs_name_check(const char *name, size_t len);

/* ---- attributes as the guest sees them ---- */
struct vfs_attr {
	uint64_t ino, size, blocks;
	int64_t atime, mtime, ctime;
	uint32_t atimensec, mtimensec, ctimensec;
	uint32_t mode, nlink, uid, gid, rdev;
};
struct vfs_setattr {
	uint32_t valid;        /* FATTR_* */
	uint32_t mode, uid, gid;
	uint64_t size;
	struct timespec atime, mtime; /* tv_nsec UTIME_NOW / UTIME_OMIT as utimensat */
};
/* Who is asking, from the request header */
struct vfs_cred {
	uint32_t uid, gid;
};

/* ---- mounts and nodes (tree.c) ---- */
struct vfs;
struct node;
struct handle;
struct mem_inode;
struct backend;

struct vmount {
	const struct backend *be;
	char *guest_path;        /* absolute guest path of its root */
	enum vfs_mount_type type;
	bool readonly;
	bool single_file;        /* the root is a file, reached as `base` inside dirfd */
	int dirfd;               /* host: O_PATH directory holding the mount (the root itself for
				  * a directory mount, its parent for a file mount) */
	char *base;              /* host file mounts: the file's name in dirfd; else NULL */
	char *snapshot;          /* overlay: the copy's directory, removed by vfs_free */
	struct mem_inode *mroot; /* memory: root inode */
	uint64_t dev_tag;        /* mixed into inode numbers of memory mounts */
	dev_t dev;               /* host mounts: the device of the root */
};

struct node {
	uint64_t id;             /* the FUSE nodeid; 1 is the workspace root */
	struct node *parent;     /* NULL for the root and for detached (removed) nodes */
	char *name;
	struct vmount *m;        /* NULL: a synthesized directory (only its pinned children) */
	bool mount_root;         /* m's root: relative paths start below it */
	bool pinned;             /* mount points and synthesized dirs: never freed or moved */
	uint64_t nlookup;        /* the kernel's references (LOOKUP, CREATE...; FORGET drops) */
	uint32_t refs;           /* children, open handles, pinning */
	struct mem_inode *mi;    /* memory mounts: the inode it names */
	int keep_fd;             /* host: O_PATH fd of a file removed while the kernel still knew it
				  * (unlink, rename over): its inode, reached now that its name is gone */
	struct node *id_next, *name_next; /* hash chains */
	struct node **kids;      /* pinned children: mount points and synthesized dirs below */
	size_t nkids;
};

/* The tree's lock guards every node field and both hash tables. */
void vtree_lock(struct vfs *v);
void vtree_unlock(struct vfs *v);
int vtree_init(struct vfs *v);
void vtree_free(struct vfs *v);
/* Builds the synthesized dirs and pinned mount roots for v->mounts. */
int vtree_build(struct vfs *v, struct ml_err *e);
/* Locked: the node with this id, or NULL (forged or forgotten ids). */
struct node *vtree_get(struct vfs *v, uint64_t id);
/* Locked: a pinned child of dir named name, else the cached child, else NULL. */
struct node *vtree_child(struct vfs *v, struct node *dir, const char *name);
/* Locked: finds or makes the child node (dir, name) in dir's mount. NULL on ENOMEM. */
struct node *vtree_child_make(struct vfs *v, struct node *dir, const char *name);
/* Locked: kernel references. */
void vtree_lookup_ref(struct node *n);
void vtree_forget(struct vfs *v, struct node *n, uint64_t count);
void vtree_ref(struct node *n);
void vtree_unref(struct vfs *v, struct node *n);
/* Locked: n leaves its parent (unlink, rmdir, renamed over). */
void vtree_detach(struct vfs *v, struct node *n);
/* Locked: n moves to (dir, name). */
int vtree_move(struct vfs *v, struct node *n, struct node *dir, const char *name);
/* Locked: the path of n relative to its mount's host directory ("." for a directory mount's
 * root). -ENOENT for a detached node, -ENAMETOOLONG. */
int vtree_relpath(struct node *n, char *buf, size_t size);
/* Locked: the full guest path of n, or of (dir, name) when name is not NULL. */
int vtree_guest_path(struct vfs *v, struct node *n, const char *name, char *buf, size_t size);
uint64_t vtree_count(struct vfs *v);

/* ---- storage backends: hostfs.c (host_fs, ro, overlay) and memfs.c (memory) ---- */
struct dirent_rec {
	char *name;
	uint64_t ino;
	uint32_t type; /* DT_* */
};
struct handle {
	struct node *node;
	int fd;                   /* host: the open file or directory */
	struct mem_inode *mi;     /* memory */
	int flags;                /* open flags */
	bool is_dir;
	struct dirent_rec *ents;  /* directories: the listing taken at the first READDIR */
	size_t nents;
	bool listed;
	pthread_mutex_t lock;     /* directory listing */
	uint32_t users;           /* requests using it now (handles.c) */
	bool dying;               /* released: freed when the last user is done */
};

struct backend {
	int (*getattr)(struct vfs *v, struct node *n, struct handle *h, struct vfs_attr *a);
	int (*lookup)(struct vfs *v, struct node *dir, const char *name, struct vfs_attr *a,
		      struct mem_inode **mi);
	int (*setattr)(struct vfs *v, struct node *n, struct handle *h, const struct vfs_setattr *s,
		       struct vfs_attr *a);
	int (*readlink)(struct vfs *v, struct node *n, char *buf, size_t size);
	int (*mknod)(struct vfs *v, struct node *dir, const char *name, uint32_t mode, uint32_t rdev,
		     const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi);
	int (*mkdir)(struct vfs *v, struct node *dir, const char *name, uint32_t mode,
		     const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi);
	int (*symlink)(struct vfs *v, struct node *dir, const char *name, const char *target,
		       const struct vfs_cred *c, struct vfs_attr *a, struct mem_inode **mi);
	int (*link)(struct vfs *v, struct node *src, struct node *dir, const char *name,
		    struct vfs_attr *a, struct mem_inode **mi);
	int (*unlink)(struct vfs *v, struct node *dir, const char *name, bool is_dir);
	int (*rename)(struct vfs *v, struct node *odir, const char *oname, struct node *ndir,
		      const char *nname, unsigned flags);
	int (*open)(struct vfs *v, struct node *n, int flags, struct handle *h);
	int (*create)(struct vfs *v, struct node *dir, const char *name, int flags, uint32_t mode,
		      const struct vfs_cred *c, struct handle *h, struct vfs_attr *a,
		      struct mem_inode **mi);
	ssize_t (*read)(struct vfs *v, struct handle *h, void *buf, size_t size, uint64_t off);
	ssize_t (*write)(struct vfs *v, struct handle *h, const void *buf, size_t size, uint64_t off);
	void (*release)(struct vfs *v, struct handle *h);
	int (*fsync)(struct vfs *v, struct handle *h, bool datasync);
	int (*fallocate)(struct vfs *v, struct handle *h, int mode, uint64_t off, uint64_t len);
	int64_t (*lseek)(struct vfs *v, struct handle *h, int64_t off, int whence);
	int (*opendir)(struct vfs *v, struct node *n, struct handle *h);
	int (*list)(struct vfs *v, struct handle *h); /* fills h->ents */
	int (*statfs)(struct vfs *v, struct node *n, struct statvfs *st);
	ssize_t (*getxattr)(struct vfs *v, struct node *n, const char *name, void *buf, size_t size);
	int (*setxattr)(struct vfs *v, struct node *n, const char *name, const void *val,
			size_t size, int flags);
	ssize_t (*listxattr)(struct vfs *v, struct node *n, char *buf, size_t size);
	int (*removexattr)(struct vfs *v, struct node *n, const char *name);
	/* Before n loses its name: keep a handle on its inode (n->keep_fd). Optional. */
	void (*keep)(struct vfs *v, struct node *n);
};
extern const struct backend vfs_hostfs;
extern const struct backend vfs_memfs;

/* hostfs.c: opening a mount's host root (checked readable) and its helpers */
int hostfs_open_root(struct vmount *m, const char *host_path, struct ml_err *e);
/* The guest-visible ownership kept beside a host file (podman's override_stat idea): */
#define VFS_OWNER_XATTR "user.matchlock.stat"

/* memfs.c */
struct memfs;
int memfs_new(uint64_t limit, struct memfs **out);
void memfs_free(struct memfs *fs);
struct mem_inode *memfs_root(struct memfs *fs, uint32_t mode, uint32_t uid, uint32_t gid);
void memfs_inode_unref(struct memfs *fs, struct mem_inode *mi);
/* Synthesized directories and pinned nodes without a mount use these attributes. */
void vfs_synth_attr(struct vfs *v, struct node *n, struct vfs_attr *a);

/* ---- rules and events (hooks.c) ---- */
/* true when a before-phase block rule matches (op, full guest path). */
bool hooks_blocked(struct vfs *v, enum vfs_op op, const char *path);
void hooks_event(struct vfs *v, enum vfs_op op, const char *path, uint64_t size,
		 const struct vfs_attr *a);
int hooks_init(struct vfs *v);
void hooks_free(struct vfs *v);

/* ---- handles (handles.c): fh values carry a generation so a forged one is refused ---- */
int handles_init(struct vfs *v);
void handles_free(struct vfs *v);
/* A new handle for node n (referenced); *fh its id. */
struct handle *handle_new(struct vfs *v, struct node *n, uint64_t *fh);
/* The handle for fh, with a use count held (handle_put), or NULL. */
struct handle *handle_get(struct vfs *v, uint64_t fh);
void handle_put(struct vfs *v, struct handle *h);
/* Removes fh from the table; the handle is released once the last user puts it. */
struct handle *handle_take(struct vfs *v, uint64_t fh);
/* An open file of node n, with a use count held (handle_put), or NULL. For a node whose name is
 * gone (unlinked while open): the open file is all that still reaches it. */
struct handle *handle_of_node(struct vfs *v, struct node *n);
uint64_t handles_count(struct vfs *v);

/* ---- the whole thing ---- */
#define VFS_EVENTS_MAX 1024 /* 4 KiB each (the path): 4 MiB at most per VM */
struct vfs_event_queue {
	pthread_mutex_t lock;
	struct vfs_event *ring;
	size_t head, len;
	int efd;
	uint64_t dropped, total;
};

struct vfs {
	char *workspace;
	char *owner_spec;
	uint32_t owner_uid, owner_gid;   /* default guest owner (agent's hello), 0:0 until then */
	dev_t host_dev;                  /* the first host mount's device: its inode numbers stay */
	struct vmount *mounts;
	size_t n_mounts;
	struct memfs *memfs;
	/* tree */
	pthread_mutex_t tree_mu;
	struct node **id_tab, **name_tab;
	size_t id_cap, name_cap, n_nodes;
	uint64_t next_id;
	struct node *root;
	/* handles */
	pthread_mutex_t h_mu;
	struct hslot *hslots;
	size_t h_cap, h_used;
	uint32_t *h_free;
	size_t h_nfree;
	/* rules and events */
	struct vfs_rule *rules;
	size_t n_rules;
	bool intercept;                  /* rules or events: compute guest paths per op */
	bool events_on;
	struct vfs_event_queue ev;
	/* channel */
	int fd;
	unsigned workers;
	pthread_t *threads;
	size_t n_threads;
	pthread_mutex_t rd_mu, wr_mu;
	bool stopping;
	bool inited;                     /* FUSE_INIT answered */
	uint32_t minor;                  /* negotiated FUSE minor version */
	/* sync with the agent (files API invalidations) */
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	uint64_t sync_sent, sync_acked;
	/* counters (atomic) */
	uint64_t n_requests, n_errors, n_blocked, inflight, max_inflight;
	uint32_t n_kept;                 /* nodes holding a keep_fd (bounded) */
};

/* chan.c: one reply or notification on the channel (whole message, under the write lock). */
int chan_reply(struct vfs *v, uint64_t unique, int error, const void *data, size_t len);
int chan_reply2(struct vfs *v, uint64_t unique, int error, const void *a, size_t alen,
		const void *b, size_t blen);
int chan_notify(struct vfs *v, int code, const void *data, size_t len);
/* Waits (up to timeout_ms) until the agent has written every notification sent so far. */
int chan_sync(struct vfs *v, int timeout_ms);

/* fuse_ops.c: serve one decoded request (writes its reply). reply_buf has VFS_REQ_MAX bytes. */
void fuse_dispatch(struct vfs *v, const struct vfs_req *r, uint8_t *reply_buf);
/* The kernel drops its caches for (dir, name) and for n's data (files API writes). */
void fuse_invalidate(struct vfs *v, uint64_t dir_id, const char *name, uint64_t node_id);

/* Attribute helpers shared by the backends */
void attr_from_stat(struct vfs *v, struct vfs_attr *a, const struct stat *st);

#endif
