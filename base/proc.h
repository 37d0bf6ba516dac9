/* base/proc.h - process-wide set-up that every matchlock executable (the CLI, the test binaries,
 * the fuzz targets) does first, so code behaves the same under a test as in the product. */
#ifndef ML_BASE_PROC_H
#define ML_BASE_PROC_H

/* SIGPIPE ignored: a peer that closed its end (the guest, a registry, a dropped client) must
 * give EPIPE on that one write, never kill the supervisor. libslirp and libcurl write to
 * sockets without MSG_NOSIGNAL, so this cannot be done per call. */
/* Also sets the diagnostics level from $MATCHLOCK_LOG (error by default). */
void ml_process_init(void);

#endif
