/* base/log.h - the one logging helper. Diagnostics go to stderr only when verbose (the level is
 * set by main from MATCHLOCK_LOG, ml_log_set_level), and, at info level and above, to the sink
 * bound to the calling thread (a sandbox's vm.log: base/logfile.h). User-facing errors are NOT
 * logged here: main prints them once from struct ml_err. */
#ifndef ML_BASE_LOG_H
#define ML_BASE_LOG_H

#include <stddef.h>

enum ml_log_level { ML_LOG_ERROR = 0, ML_LOG_WARN, ML_LOG_INFO, ML_LOG_DEBUG };

void ml_log_set_level(enum ml_log_level lvl);
/* Parses MATCHLOCK_LOG's values (error, warn, info, debug or 1); unknown -> error. */
enum ml_log_level ml_log_level_parse(const char *v);
/* Messages logged by the calling thread (up to INFO) also go to fn(arg, line, len); NULL stops. */
void ml_log_bind_thread(void (*fn)(void *arg, const char *line, size_t len), void *arg);
void ml_log(enum ml_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ml_error(...) ml_log(ML_LOG_ERROR, __VA_ARGS__)
#define ml_warn(...)  ml_log(ML_LOG_WARN, __VA_ARGS__)
#define ml_info(...)  ml_log(ML_LOG_INFO, __VA_ARGS__)
#define ml_debug(...) ml_log(ML_LOG_DEBUG, __VA_ARGS__)

#endif
