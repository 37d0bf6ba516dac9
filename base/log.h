/* base/log.h - the one logging helper. Diagnostics go to stderr only when verbose (MATCHLOCK_LOG
 * or ml_log_set_level), and always to a log file when one is set (the VM's log). User-facing
 * errors are NOT logged here: main prints them once from struct ml_err. */
#ifndef ML_BASE_LOG_H
#define ML_BASE_LOG_H

enum ml_log_level { ML_LOG_ERROR = 0, ML_LOG_WARN, ML_LOG_INFO, ML_LOG_DEBUG };

void ml_log_set_level(enum ml_log_level lvl);
/* Also append every message (any level up to INFO) to this fd; -1 to stop. Not owned. */
void ml_log_set_file(int fd);
void ml_log(enum ml_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ml_error(...) ml_log(ML_LOG_ERROR, __VA_ARGS__)
#define ml_warn(...)  ml_log(ML_LOG_WARN, __VA_ARGS__)
#define ml_info(...)  ml_log(ML_LOG_INFO, __VA_ARGS__)
#define ml_debug(...) ml_log(ML_LOG_DEBUG, __VA_ARGS__)

#endif
