/* agent/agent.h - internal API of the guest agent (PID 1 of every VM). Not used by the host;
 * the host only shares agent/proto.h. See agent/README.md for the data flow. */
#ifndef ML_AGENT_AGENT_H
#define ML_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/proto.h"
#include "base/err.h"

#define AGENT_CTL_PORT PROTO_PORT_CTL

/* --- fsutil.c: small file helpers --- */
int mkdir_p(const char *path, mode_t mode);
int write_all(int fd, const void *p, size_t n);
/* Writes s into an existing file (sysfs, cgroupfs, procfs): no create, no truncate. */
int write_existing(const char *path, const char *s, struct ml_err *e);
/* Replaces path with a new regular file holding s (temp + rename, so a symlink is replaced). */
int replace_file(const char *path, const char *s, mode_t mode, struct ml_err *e);
/* Reads a small file into buf (NUL-terminated, trailing whitespace cut). Returns length or -errno. */
ssize_t read_small(const char *path, char *buf, size_t size);

/* --- boot.c: what PID 1 does before the control channel exists --- */
void boot_mount_early(void);
void boot_std_fds(void);
void boot_load_modules(const char *order_path, const char *dir);
/* Finds the virtio-serial port named name and opens it (nonblocking), waiting up to timeout_ms. */
int boot_open_port(const char *name, int timeout_ms, struct ml_err *e);
/* Logs why, kills every process, unmounts the extra disks, syncs and powers the VM off. PID 1
 * must never exit, so this never returns. */
void boot_poweroff(const char *why) __attribute__((noreturn));

/* --- rootfs.c: image disk + scratch disk -> overlay root, then the runtime mounts --- */
int rootfs_switch(struct ml_err *e);
/* The /dev node of the disk whose virtio serial is serial, waiting up to 10 s for it to appear. */
int rootfs_wait_disk(const char *serial, char *dev, size_t size, struct ml_err *e);

/* --- disks.c: CFG_DISK extra disks, mounted after the root switch, unmounted at power-off --- */
int disks_mount(const struct proto_config *c, struct ml_err *e);
void disks_unmount(void);

/* --- ca.c: the interception CA (CONFIG tag 10) --- */
int ca_install(const char *pem, struct ml_err *e);

/* --- config.c: PT_CONFIG applied once --- */
int config_apply(const struct proto_config *c, struct ml_err *e);
/* cgroup every exec joins, or NULL when no CPU quota was asked for. */
const char *config_exec_cgroup(void);

/* --- workspace.c: CFG_WORKSPACE: FUSE at the workspace path, pumped over the files channel --- */
int workspace_mount(const struct proto_config *c, struct ml_err *e);

/* --- net.c: eth0 10.0.2.15/24 via 10.0.2.2 with the given MTU, IPv6 off --- */
int net_configure(uint32_t mtu, struct ml_err *e);

/* --- user.c: EX_USER resolved against the guest's own /etc/passwd and /etc/group --- */
struct user_ids {
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary, includes gid */
	size_t ngroups;
	char *name;    /* NULL for a numeric uid without a passwd entry */
	char *home;    /* never NULL after a successful resolve */
};
/* etc is the directory holding passwd and group ("/etc" in the guest). */
int user_resolve(const char *etc, const char *spec, struct user_ids *u, struct ml_err *e);
void user_ids_free(struct user_ids *u);

/* --- sandbox.c: what an unprivileged exec gives up before execve --- */
int sandbox_drop_caps(struct ml_err *e);
int sandbox_load_seccomp(struct ml_err *e);
/* Compiles the filter once (at start) so each exec only installs it. */
int sandbox_prepare_seccomp(struct ml_err *e);

/* --- child.c: the forked child, from fork to execve --- */
struct child_fds {
	int in, out, err; /* pipe ends for 0/1/2; in = -1 for /dev/null */
	int tty;          /* PTY slave, or -1 */
	int status;       /* CLOEXEC pipe: an error line is written here if execve is not reached */
};
void child_exec(const struct proto_exec *x, const struct child_fds *f) __attribute__((noreturn));

/* --- fileop.c: EXF_FILEOP: a file operation in the child instead of execve --- */
void child_fileop(const struct proto_exec *x) __attribute__((noreturn));

/* --- server.c: the epoll loop, the control channel and its output queue --- */
struct server;
struct watch;
typedef void (*watch_fn)(struct server *s, struct watch *w, uint32_t events);
struct watch {
	int fd;        /* -1 once closed; a stale event for it is skipped */
	uint32_t want; /* events currently registered (0 = not in the epoll set) */
	watch_fn fn;
	void *owner;
};

struct exec;
struct server {
	int epfd;
	struct watch ctl, sig, backoff;
	bool in_backoff;
	struct proto_reader rd;
	struct proto_msg out;
	size_t out_off;
	int cfg_state; /* CFG_STATE_* */
	struct exec **execs;
	size_t nexecs, cap_execs, nlive;
};
enum { CFG_STATE_WAIT, CFG_STATE_OK, CFG_STATE_FAILED };

/* Sets the events fd is polled for; 0 removes it from the set (EPOLLHUP would still fire). */
void watch_set(struct server *s, struct watch *w, uint32_t events);
void watch_close(struct server *s, struct watch *w);
void server_send(struct server *s, uint16_t type, uint32_t stream, const void *p, size_t n);
void server_send_u32(struct server *s, uint16_t type, uint32_t stream, uint32_t v);
void server_send_error(struct server *s, uint32_t stream, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void server_run(int ctl_fd) __attribute__((noreturn));

/* --- exec.c: one exec per stream: spawn, output with flow control, stdin, exit --- */
void exec_start(struct server *s, uint32_t stream, const uint8_t *p, size_t n);
void exec_stdin(struct server *s, uint32_t stream, const uint8_t *p, size_t n);
void exec_credit(struct server *s, uint32_t stream, const uint8_t *p, size_t n);
void exec_signal(struct server *s, uint32_t stream, const uint8_t *p, size_t n);
void exec_cancel(struct server *s, uint32_t stream);
void exec_resize(struct server *s, uint32_t stream, const uint8_t *p, size_t n);
/* Called for every pid waitpid() returned; pids that are not execs are orphans and ignored. */
void exec_reaped(struct server *s, pid_t pid, int wstatus);
/* Frees execs whose stream ended and whose fds are all closed (after an epoll batch). */
void exec_gc(struct server *s);

#endif
