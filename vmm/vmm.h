/* vmm/vmm.h - starts and watches the VM engine (qemu-system-x86_64 -M microvm), owns the guest
 * kernel, the initramfs, the disks and the guest channels; and speaks the control protocol
 * (agent/proto.h) to the guest agent over the control channel. Knows nothing of policy. */
#ifndef ML_VMM_H
#define ML_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/proto.h"
#include "base/err.h"
#include "base/logfile.h"

/* ---- guest assets (read-only, system-wide: <prefix>/lib/matchlock) ---- */
struct vmm_assets {
	char *data_dir;    /* the directory holding agent, kernel/, images/ */
	char *kernel;      /* <data>/kernel/vmlinuz */
	char *modules_dir; /* <data>/kernel/modules (has modules.dep) */
	char *kver;        /* contents of <data>/kernel/version */
	char *agent;       /* <data>/agent (static PID 1) */
};
/* Overrides of where the assets are (each NULL or "" = the default); the caller takes them
 * from $MATCHLOCK_DATA_DIR, $MATCHLOCK_KERNEL, $MATCHLOCK_GUEST_AGENT. */
struct vmm_asset_paths {
	const char *data_dir;  /* default: <dir of /proc/self/exe>/../lib/matchlock */
	const char *kernel;    /* default: <data>/kernel/vmlinuz */
	const char *agent;     /* default: <data>/agent */
};
/* Finds and checks the assets. A missing kernel is an error that names the set-up step to
 * run. paths may be NULL (all defaults). */
int vmm_assets_find(const struct vmm_asset_paths *paths, struct vmm_assets *a, struct ml_err *e);
/* Only where they would be (data_dir, kernel, modules_dir, agent; kver stays NULL), nothing
 * checked: for `diagnose`, which checks each itself. */
int vmm_assets_paths(const struct vmm_asset_paths *paths, struct vmm_assets *a, struct ml_err *e);
void vmm_assets_free(struct vmm_assets *a);

/* Builds (or reuses) the initramfs: a newc cpio written by our code holding the agent as /init,
 * exactly the kernel modules it needs (closure from modules.dep) and /modules.order. Cached in
 * <cache_dir>/initramfs/<key>.cpio, where key covers the agent's bytes, the kernel version and
 * the module list, so a new agent or kernel gives a new file. *path is malloc'd. */
int vmm_initramfs(const struct vmm_assets *a, const char *cache_dir, char **path, struct ml_err *e);

/* The engine binary: override (the caller's $MATCHLOCK_QEMU) if set, else qemu-system-x86_64
 * from $PATH (malloc'd). A missing one is an error naming the package to install. */
int vmm_qemu_binary(const char *override, char **path, struct ml_err *e);

/* ---- accelerator ---- */
enum vmm_accel { VMM_ACCEL_AUTO = 0, VMM_ACCEL_KVM, VMM_ACCEL_TCG };
/* KVM when the host can run an unmodified guest (vmx/svm in /proc/cpuinfo, /dev/kvm usable,
 * no kvm_pvm module), else TCG. mode "kvm" or "tcg" forces one ($MATCHLOCK_ACCEL, given by the
 * caller); NULL, "" or "auto" chooses. reason: one line, why. */
enum vmm_accel vmm_accel_choose(const char *mode, char *reason, size_t reason_len);
/* Host TSC frequency in kHz (for tsc_early_khz=, which avoids a TCG boot hang), 0 if unknown. */
unsigned long vmm_host_tsc_khz(void);

/* ---- one VM ---- */
/* A disk beyond the image and scratch disks (a named volume, a --disk file): persistent, so it
 * uses the host's page cache with the guest's flushes honoured, and I/O errors (a full host
 * disk) go to the guest instead of pausing the VM. */
struct vmm_drive {
	const char *path;
	const char *serial;      /* the guest finds it by /sys/block/vdX/serial: [a-z0-9-], 1..20 bytes */
	bool readonly;           /* read-only to the engine (the guest cannot write it at all) */
};
#define VMM_MAX_DRIVES 16

struct vmm_config {
	const char *state_dir;   /* per-VM dir (0700): ctl.sock etc. go here */
	const char *kernel;
	const char *initrd;
	const char *rootfs;      /* image rootfs ext4, attached read-only (serial "rootfs") */
	const char *scratch;     /* per-VM sparse ext4, read-write (serial "scratch") */
	const struct vmm_drive *drives;  /* extra disks, after those two (at most VMM_MAX_DRIVES) */
	size_t n_drives;
	unsigned vcpus;
	unsigned mem_mb;
	enum vmm_accel accel;    /* resolved, not AUTO */
	bool network;            /* false: no NIC at all; true: a virtio-net NIC whose frames come to
				  * us on vmm_net_fd() (or, with MATCHLOCK_NET_BACKEND=qemu-user, go to
				  * QEMU's own user networking: the benchmark's baseline only) */
	bool files;              /* the workspace's files channel (vfs/ serves it) */
	struct ml_logger *log;   /* console and engine messages go here (not owned; NULL: nowhere) */
	const char *engine;      /* the engine binary; NULL: qemu-system-x86_64 from $PATH */
	bool qemu_user_net;      /* benchmark baseline: QEMU's own user networking, no policy */
};

/* The guest channels: byte streams between the supervisor and the guest, each a unix socket
 * in the state dir (<name>.sock) that the engine connects to at start. */
enum vmm_chan {
	VMM_CHAN_CTL,    /* control protocol (agent/PROTOCOL.md), virtio-serial org.matchlock.ctl */
	VMM_CHAN_NET,    /* the NIC's frames (vmm_netstream), with `network` */
	VMM_CHAN_FILES,  /* the workspace's FUSE traffic (vfs/), virtio-serial org.matchlock.files */
	VMM_CHAN_COUNT
};

struct vmm;
/* Listens on the control socket, then launches the engine as our child (it dies with us:
 * PR_SET_PDEATHSIG), and waits until the engine has connected the channel. Returns with the
 * guest booting; the agent announces itself with PT_HELLO on vmm_ctl_fd(). */
int vmm_start(const struct vmm_config *c, struct vmm **out, struct ml_err *e);
/* The engine's connection for channel ch (nonblocking, owned by vm), -1 when it is off. */
int vmm_chan_fd(const struct vmm *vm, enum vmm_chan ch);
int vmm_ctl_fd(const struct vmm *vm);      /* vmm_chan_fd(vm, VMM_CHAN_CTL) */
int vmm_console_fd(const struct vmm *vm);  /* engine stdout+stderr (guest console), nonblocking */
/* Reads what the console has and appends it to the log (capped) and to the in-memory tail.
 * Returns 0, or -EPIPE once the engine closed it (it exited). */
int vmm_console_pump(struct vmm *vm);
/* The last lines of the console (up to ~4 KiB), for error messages. Never NULL. */
const char *vmm_console_tail(struct vmm *vm);
pid_t vmm_pid(const struct vmm *vm);
/* The guest NIC's frame stream (nonblocking, owned by vm), or -1 when the VM has no NIC or
 * uses QEMU's own user networking. Frames travel as vmm_netstream describes. */
int vmm_net_fd(const struct vmm *vm);
/* Waits up to timeout_ms for the engine to exit by itself (the guest powered off), pumping the
 * console meanwhile. 0 once it has exited and been reaped, -ETIMEDOUT if it still runs. */
int vmm_wait_exit(struct vmm *vm, int timeout_ms);
/* Non-blocking: 1 and *status if the engine exited, 0 if still running. */
int vmm_reap(struct vmm *vm, int *status);
/* SIGKILL the engine and reap it (idempotent). */
void vmm_kill(struct vmm *vm);
/* Kills if alive, closes fds, removes the sockets it made. NULL-safe. */
void vmm_free(struct vmm *vm);

/* ---- the NIC's frame stream: each Ethernet frame preceded by its length, 4 bytes big-endian
 * (QEMU -netdev stream). Single-threaded; used by whoever runs the network loop. ---- */
#define VMM_GUEST_MAC "52:54:00:12:34:56"
#define VMM_NET_FRAME_MAX 65550u   /* a longer length prefix means the stream is corrupt */
struct vmm_netstream;
int vmm_netstream_new(int fd, struct vmm_netstream **out);
void vmm_netstream_free(struct vmm_netstream *s);   /* does not close fd */
/* Reads what the fd has (up to a bounded amount per call) and calls fn for each whole frame.
 * Returns 0 (call again when readable), -EPIPE at end of stream, -EPROTO on a length of 0 or
 * over VMM_NET_FRAME_MAX, or another -errno. */
int vmm_netstream_read(struct vmm_netstream *s, void (*fn)(void *arg, const uint8_t *f, size_t len),
		       void *arg);
/* Bytes of frame the write buffer can still take (a frame needs len + 4). */
size_t vmm_netstream_room(const struct vmm_netstream *s);
/* Queues one frame; -ENOBUFS when it does not fit (the caller keeps it for later). */
int vmm_netstream_queue(struct vmm_netstream *s, const uint8_t *frame, size_t len);
/* Writes what the fd takes now. 0, or -errno (-EPIPE: the engine is gone). */
int vmm_netstream_flush(struct vmm_netstream *s);
bool vmm_netstream_wants_write(const struct vmm_netstream *s);

/* ---- control-protocol client (host end), driven by the caller's event loop ----
 * Callbacks run from inside ctl_on_readable/ctl_on_writable and the ctl_exec_* calls; they may
 * call any ctl function except ctl_free. */
/* Bytes the host may have queued for the guest. Past half of it the channel stops reading the
 * guest (ctl_wants_read) until the guest has taken what we sent; a frame that would pass it
 * is refused with -ENOBUFS (stdin takes less and calls stdin_ready once there is room). */
#define CTL_QUEUE_MAX (4u << 20)
struct ctl;
struct ctl_exec_ops {
	void (*started)(void *arg, uint32_t pid);
	/* Data for stdout (fd 1) or stderr (fd 2); len 0 means that stream ended. The callee
	 * must call ctl_exec_consumed() once it has written the bytes on (flow control). */
	void (*output)(void *arg, int fd, const uint8_t *data, size_t len);
	/* The exec is over; the stream is forgotten before this is called (no callback for it
	 * follows). code = exit status, or 128+signal when killed by a signal (signal then holds
	 * the number). */
	void (*exited)(void *arg, int code, int signal);
	/* The guest could not start it (bad cwd, unknown user, no such binary...), or the channel
	 * broke; the stream is forgotten before this is called, as for exited. */
	void (*failed)(void *arg, const char *msg);
	/* Guest refilled the stdin window: ctl_exec_stdin may accept more. */
	void (*stdin_ready)(void *arg);
};
/* hello, then ready or config_failed, are called at most once each, in that order: the same
 * frames out of turn (a replayed HELLO or READY) are ignored and counted (ctl_ignored_frames).
 * Text arguments are guest text made terminal-safe (base/text.h). */
struct ctl_ops {
	void (*hello)(void *arg, uint32_t version, const char *info);
	void (*ready)(void *arg);                 /* PT_READY after ctl_configure */
	void (*config_failed)(void *arg, const char *msg);
	void (*log)(void *arg, const char *line);
	void (*pong)(void *arg, const uint8_t *data, size_t len);
	/* The channel broke (EOF, I/O error, or a malformed/oversized frame: msg says which).
	 * Every live exec has been failed before this is called. */
	void (*closed)(void *arg, const char *msg);
};
int ctl_new(int fd, const struct ctl_ops *ops, void *arg, struct ctl **out);
void ctl_free(struct ctl *c);
/* Call when the fd is readable / writable. Return <0 once the channel is dead. */
int ctl_on_readable(struct ctl *c);
int ctl_on_writable(struct ctl *c);
/* What to poll the fd for: POLLIN only while ctl_wants_read, POLLOUT while ctl_wants_write. */
bool ctl_wants_read(const struct ctl *c);
bool ctl_wants_write(const struct ctl *c);
size_t ctl_queued_bytes(const struct ctl *c);    /* not yet written to the guest */
uint64_t ctl_ignored_frames(const struct ctl *c); /* guest frames ignored as out of turn */
/* Sends CONFIG once, after HELLO (-EALREADY after that). */
int ctl_configure(struct ctl *c, const struct proto_config *cfg);
int ctl_ping(struct ctl *c, const void *data, size_t len);
int ctl_shutdown(struct ctl *c);
/* Starts an exec; *stream is its id. */
int ctl_exec(struct ctl *c, const struct proto_exec *x, const struct ctl_exec_ops *ops, void *arg,
	     uint32_t *stream);
/* Queues stdin; returns the number of bytes taken (less than len when the window is full:
 * wait for stdin_ready). len 0 sends EOF. */
ssize_t ctl_exec_stdin(struct ctl *c, uint32_t stream, const void *data, size_t len);
/* n output bytes of stream were written on: the guest may send that much more. CREDITs are
 * owed per stream and sent together, so this never queues more than one frame per stream. */
int ctl_exec_consumed(struct ctl *c, uint32_t stream, size_t n);
/* The caller is done with stream (it gave up waiting, its client went away): no callback for
 * it is made after this returns, and an exec still running is cancelled. Call it on every way
 * out of an exec that did not end in exited/failed; harmless after them. */
int ctl_exec_release(struct ctl *c, uint32_t stream);
int ctl_exec_resize(struct ctl *c, uint32_t stream, uint16_t rows, uint16_t cols);
int ctl_exec_signal(struct ctl *c, uint32_t stream, int sig);
int ctl_exec_cancel(struct ctl *c, uint32_t stream);

#endif
