#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Quiet by default: a failure reaches the user once, as main's one line; diagnostics still go
 * to the VM log through the thread's sink. */
static int log_level = ML_LOG_ERROR;
static __thread void (*sink_fn)(void *arg, const char *line, size_t len);
static __thread void *sink_arg;

void ml_log_set_level(enum ml_log_level lvl) { log_level = (int)lvl; }

enum ml_log_level ml_log_level_parse(const char *v)
{
	if (v && !strcmp(v, "warn"))
		return ML_LOG_WARN;
	if (v && (!strcmp(v, "debug") || !strcmp(v, "1")))
		return ML_LOG_DEBUG;
	if (v && !strcmp(v, "info"))
		return ML_LOG_INFO;
	return ML_LOG_ERROR;
}

void ml_log_bind_thread(void (*fn)(void *arg, const char *line, size_t len), void *arg)
{
	sink_fn = fn;
	sink_arg = arg;
}

void ml_log(enum ml_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	if ((int)lvl > log_level && (lvl > ML_LOG_INFO || !sink_fn))
		return;
	char line[4096];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = snprintf(line, sizeof(line), "[%lld.%03ld matchlock %s] ", (long long)ts.tv_sec,
			 ts.tv_nsec / 1000000, names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	if (sink_fn && lvl <= ML_LOG_INFO)
		sink_fn(sink_arg, line, len);
	if ((int)lvl <= log_level && write(STDERR_FILENO, line, len) < 0) {
		/* nothing better to do with a closed stderr */
	}
}
