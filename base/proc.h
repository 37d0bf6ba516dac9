/* base/proc.h - process-wide set-up that every matchlock executable (the CLI, the test binaries,
 * the fuzz targets) does first, so code behaves the same under a test as in the product. */
#ifndef ML_BASE_PROC_H
#define ML_BASE_PROC_H

#include <stddef.h>

/* SIGPIPE ignored: a peer that closed its end (the guest, a registry, a dropped client) must
 * give EPIPE on that one write, never kill the supervisor. libslirp and libcurl write to
 * sockets without MSG_NOSIGNAL, so this cannot be done per call. */
/* Also sets the diagnostics level from $MATCHLOCK_LOG (error by default). */
void ml_process_init(void);

/* SIGINT and SIGTERM inherited as ignored are set back to their default: a `matchlock exec`
 * or `run` that a script started in the background (where the shell makes SIGINT ignored)
 * must still end on SIGINT. Other signals keep an inherited SIG_IGN (nohup's SIGHUP). */
void ml_signals_unignore(void);

/* A nonblocking, close-on-exec signalfd for sigs (n of them), which are blocked first, after
 * ml_signals_unignore (an ignored signal is dropped when sent: signalfd would never see it).
 * Returns the fd, or -errno. */
int ml_signalfd(const int *sigs, size_t n);

#endif
