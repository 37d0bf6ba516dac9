/* vmm/vmm_internal.h - what the files of vmm/ share with each other (and with the unit tests),
 * but not with the rest of matchlock: the struct vmm, the cpio writer, the modules.dep resolver,
 * the engine's argv. */
#ifndef ML_VMM_INTERNAL_H
#define ML_VMM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/err.h"
#include "vmm/vmm.h"

/* ---- console capture (console.c) ---- */
#define VMM_CONSOLE_TAIL 4096u

struct vmm_console {
	int fd;               /* read end of the engine's stdout+stderr pipe, nonblocking */
	struct ml_logger *log; /* not owned; it holds the byte budget of the whole vm.log */
	bool eof;
	char ring[VMM_CONSOLE_TAIL]; /* last bytes seen, circular */
	size_t ring_head;     /* next write position */
	size_t ring_len;      /* valid bytes (<= sizeof ring) */
	char tail[VMM_CONSOLE_TAIL + 1]; /* vmm_console_tail() result */
};

void vmm_console_init(struct vmm_console *c, int fd, struct ml_logger *log);
/* Reads everything available now (nonblocking). 0, or -EPIPE at end of file. */
int vmm_console_read(struct vmm_console *c);
/* Feeds bytes as if read from the pipe (used by the reader and by tests). */
void vmm_console_feed(struct vmm_console *c, const char *data, size_t len);
const char *vmm_console_tail_of(struct vmm_console *c);

/* ---- guest channels (chans.c): one table, one state per row ---- */
enum vmm_chan_kind {
	VMM_CHAN_SERIAL, /* a virtio-serial port (-chardev socket + virtserialport) */
	VMM_CHAN_NETDEV, /* the NIC's frame stream (-netdev stream + virtio-net-device) */
};
struct vmm_chan_def {
	const char *what;  /* for messages: "control", "network", "files" */
	const char *sock;  /* socket file name in the state dir */
	enum vmm_chan_kind kind;
	const char *id;    /* QEMU chardev/netdev id */
	const char *port;  /* virtserialport name the guest looks for (serial only) */
	bool (*wanted)(const struct vmm_config *c);
};
extern const struct vmm_chan_def vmm_chans[VMM_CHAN_COUNT];

struct vmm_chan_state {
	int fd;      /* the engine's connection, nonblocking; -1 until accepted (or unused) */
	int lfd;     /* listening socket until the engine connected; -1 after */
	char *path;  /* <state_dir>/<sock>, unlinked by vmm_free; NULL when the channel is off */
};

struct vmm {
	pid_t pid;          /* 0 once reaped */
	int status;         /* wait status once reaped */
	bool reaped;
	struct vmm_chan_state chan[VMM_CHAN_COUNT];
	struct vmm_console con;
};

void vmm_chans_init(struct vmm *vm);
/* Listens on the socket of every channel c wants (before the engine starts). */
int vmm_chans_listen(struct vmm *vm, const struct vmm_config *c, struct ml_err *e);
/* The first channel still waiting for the engine's connection, or -1 when all are connected. */
int vmm_chans_pending(const struct vmm *vm);
/* Accepts the engine's connection on ch: 1 taken, 0 nothing to take yet, <0 error. */
int vmm_chan_accept(struct vmm_chan_state *ch, const char *what, struct ml_err *e);
/* Closes every fd and unlinks every socket file. */
void vmm_chans_close(struct vmm *vm);
int vmm_chan_listen(const char *path, const char *what, struct ml_err *e);

/* ---- newc cpio writer (cpio.c) ---- */
struct cpio_writer {
	FILE *f;
	uint32_t next_ino;
};
/* Paths inside the archive are given without a leading '/'. Owner is always 0:0, mtime 0, so the
 * same inputs give the same bytes. */
void cpio_writer_init(struct cpio_writer *w, FILE *f);
int cpio_add_dir(struct cpio_writer *w, const char *name, unsigned mode);
int cpio_add_chardev(struct cpio_writer *w, const char *name, unsigned mode, unsigned maj,
		     unsigned min);
int cpio_add_data(struct cpio_writer *w, const char *name, unsigned mode, const void *data,
		  size_t len);
/* Copies the file at src (a regular file) into the archive as name. */
int cpio_add_file(struct cpio_writer *w, const char *name, unsigned mode, const char *src,
		  struct ml_err *e);
/* Writes the trailer. Does not close f. */
int cpio_finish(struct cpio_writer *w);

/* ---- modules.dep (modules.c) ---- */
/* The modules the guest needs, by module name ('-' and '_' are the same, as for modprobe). */
extern const char *const vmm_needed_modules[];
/* Resolves names and their dependencies from <modules_dir>/modules.dep. *paths gets a
 * NULL-terminated list of paths relative to modules_dir in load order (dependencies first, each
 * once). Free with strv_free. */
int vmm_modules_closure(const char *modules_dir, const char *const *names, char ***paths,
			struct ml_err *e);

/* ---- initramfs cache (initramfs.c) ---- */
/* The cache key for this agent content/kernel/module list: 64 hex chars + NUL. */
int vmm_initramfs_key(const struct vmm_assets *a, const void *agent, size_t agent_len,
		      char *const *modules, char key[65], struct ml_err *e);

/* ---- engine argv (qemu_args.c) ---- */
/* Resolves the engine binary: override (the caller's $MATCHLOCK_QEMU) if set, else
 * qemu-system-x86_64 from $PATH. */
int vmm_qemu_binary(const char *override, char **path, struct ml_err *e);
/* Builds the full argv (NULL-terminated, argv[0] = binary) for config c; paths[i] is the socket
 * of channel i (vmm_chans), NULL when that channel is off. A NIC without the network channel
 * (c->network, paths[VMM_CHAN_NET] NULL) is QEMU's own user networking, the benchmark's
 * baseline. tsc_khz 0 leaves tsc_early_khz out. */
int vmm_qemu_argv(const struct vmm_config *c, const char *binary,
		  const char *const paths[VMM_CHAN_COUNT], unsigned long tsc_khz, char ***argv,
		  struct ml_err *e);
/* One printable line for the log (arguments with spaces quoted). malloc'd, NULL on ENOMEM. */
char *vmm_argv_line(char *const *argv);

#endif
