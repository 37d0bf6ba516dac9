/* base/logfile.h - one sandbox's log file (its vm.log): everything the sandbox writes there
 * (the guest console, command output, the agent's log lines, our own diagnostics) goes through
 * one struct ml_logger, so one byte budget bounds the whole file however the guest floods it.
 * Thread-safe: the network thread and the loop thread share it. Not linked into the agent. */
#ifndef ML_BASE_LOGFILE_H
#define ML_BASE_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/log.h"

#define ML_LOGFILE_BUDGET_DEFAULT (64ull << 20)
/* Guest log lines (the agent's PT_LOG) allowed per second, with a burst of 10x that; lines
 * beyond are counted and summarized, so a chatty guest cannot spend the budget in a blink. */
#define ML_LOGFILE_GUEST_LINES_PER_S 50u

struct ml_logger;

/* Creates (truncates) path, mode 0600, opened O_APPEND. budget 0 = the default. */
int ml_logger_open(const char *path, uint64_t budget, struct ml_logger **out, struct ml_err *e);
/* NULL-safe. Unbinds it from the calling thread if bound there. */
void ml_logger_close(struct ml_logger *lg);

/* Raw bytes (console, command output). Past the budget one line says so, then bytes are
 * dropped (counted). Best effort: a full disk never stops the sandbox. NULL-safe. */
void ml_logger_write(struct ml_logger *lg, const void *data, size_t len);
/* One diagnostic line in ml_log's format ("[sec.ms matchlock info] ..."). NULL-safe. */
void ml_logger_printf(struct ml_logger *lg, enum ml_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One line from the guest: control characters made harmless (the file is read back on
 * terminals by `matchlock log`), prefixed, rate-limited. */
void ml_logger_guest_line(struct ml_logger *lg, const char *prefix, const char *line);

struct ml_logger_stats {
	uint64_t written;         /* bytes in the file from us */
	uint64_t dropped;         /* bytes not written: over budget */
	uint64_t guest_lines_dropped;
};
void ml_logger_stats(struct ml_logger *lg, struct ml_logger_stats *st);

/* ml_log() calls made on the calling thread (at info level and above) also go to lg, until
 * unbound with NULL. Each thread working for a sandbox binds that sandbox's logger. Returns
 * the logger bound before, so a caller can bind for a while and restore. */
struct ml_logger *ml_logger_bind_thread(struct ml_logger *lg);

#endif
