#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = -1;
static int log_fd = -1;

static int level_now(void)
{
	if (log_level < 0) {
		const char *v = getenv("MATCHLOCK_LOG");
		/* Quiet by default: a failure reaches the user once, as main's one line; warnings
		 * still go to the VM log. */
		log_level = ML_LOG_ERROR;
		if (v && !strcmp(v, "warn"))
			log_level = ML_LOG_WARN;
		else if (v && (!strcmp(v, "debug") || !strcmp(v, "1")))
			log_level = ML_LOG_DEBUG;
		else if (v && !strcmp(v, "info"))
			log_level = ML_LOG_INFO;
	}
	return log_level;
}

void ml_log_set_level(enum ml_log_level lvl) { log_level = (int)lvl; }
void ml_log_set_file(int fd) { log_fd = fd; }

void ml_log(enum ml_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
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
	if (log_fd >= 0 && lvl <= ML_LOG_INFO && write(log_fd, line, len) < 0) {
		/* the log file is best effort; a full disk must not stop the sandbox */
	}
	if ((int)lvl <= level_now() && write(STDERR_FILENO, line, len) < 0) {
		/* nothing better to do with a closed stderr */
	}
}
