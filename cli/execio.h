/* cli/execio.h - runs one exec in a ready sandbox and connects it to this process's stdio:
 * output to fds 1/2 (and the VM log) with flow control, stdin when asked, a raw-mode terminal
 * with SIGWINCH resizes for -it, SIGINT/SIGTERM/timeout handling. */
#ifndef ML_CLI_EXECIO_H
#define ML_CLI_EXECIO_H

#include <stdbool.h>

#include "base/err.h"
#include "base/logfile.h"
#include "base/loop.h"
#include "vmm/vmm.h"

struct execio_opts {
	bool tty;          /* -it: PTY in the guest, raw terminal here */
	bool stdin_open;   /* -i: forward our stdin */
	long timeout_s;    /* 0 = none */
	struct ml_logger *log; /* output is also appended here (NULL = no) */
};

enum execio_end {
	EXECIO_EXITED,    /* *code = guest exit status (128+sig if killed) */
	EXECIO_FAILED,    /* could not start: message in e */
	EXECIO_SIGNALED,  /* we got SIGINT/SIGTERM: *code = 128+signo */
	EXECIO_TIMEOUT,   /* --timeout hit */
	EXECIO_VM_DIED,   /* the VM or its channel died: message in e */
};

/* Sets up signal handling (SIGINT, SIGTERM, SIGWINCH, SIGPIPE ignored) for the whole run. */
int execio_signals_init(struct ml_err *e);
int execio_run(struct ml_loop *loop, struct ctl *ctl, struct proto_exec *x,
	       const struct execio_opts *o, int *code, struct ml_err *e);
/* Call from the sandbox's on_dead hook while an exec runs. */
void execio_vm_died(const char *msg);
/* The signalfd set up by execio_signals_init (SIGINT, SIGTERM, SIGWINCH, SIGHUP), for callers
 * that wait in their own loop; execio_read_signal() takes one (0 when none is pending). */
int execio_signal_fd(void);
int execio_read_signal(void);
/* Blocks in the loop until SIGINT/SIGTERM (for --rm=false); returns the signal number. */
int execio_wait_signal(struct ml_loop *loop);

#endif
