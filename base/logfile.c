/* base/logfile.c - see logfile.h. */
#include "base/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OVER_BUDGET_LINE "\n[matchlock: vm.log reached its size budget; further output is dropped]\n"

struct ml_logger {
	pthread_mutex_t mu;
	int fd;
	uint64_t budget;
	uint64_t written, dropped;
	bool over;
	/* token bucket for guest lines: tokens refill at LINES_PER_S, up to 10 s worth */
	double tokens;
	int64_t refill_ms;
	uint64_t guest_dropped, guest_dropped_reported;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ml_logger_open(const char *path, uint64_t budget, struct ml_logger **out, struct ml_err *e)
{
	struct ml_logger *lg = calloc(1, sizeof(*lg));
	if (!lg)
		return ml_err_set(e, -ENOMEM, "out of memory");
	lg->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (lg->fd < 0) {
		int r = ml_err_set(e, -errno, "creating %s: %s", path, strerror(errno));
		free(lg);
		return r;
	}
	pthread_mutex_init(&lg->mu, NULL);
	lg->budget = budget ? budget : ML_LOGFILE_BUDGET_DEFAULT;
	lg->tokens = ML_LOGFILE_GUEST_LINES_PER_S * 10.0;
	lg->refill_ms = mono_ms();
	*out = lg;
	return 0;
}

static __thread struct ml_logger *bound;

void ml_logger_close(struct ml_logger *lg)
{
	if (!lg)
		return;
	if (bound == lg)
		ml_logger_bind_thread(NULL);
	close(lg->fd);
	pthread_mutex_destroy(&lg->mu);
	free(lg);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* best effort: a full disk must not stop the sandbox */
		p += w;
		n -= (size_t)w;
	}
}

/* Called with mu held. The marker line is not charged to the budget, so it always fits. */
static void append_locked(struct ml_logger *lg, const char *data, size_t len)
{
	if (lg->over) {
		lg->dropped += len;
		return;
	}
	uint64_t room = lg->budget - lg->written;
	size_t n = len < room ? len : (size_t)room;
	write_all(lg->fd, data, n);
	lg->written += n;
	if (n < len) {
		lg->dropped += len - n;
		lg->over = true;
		write_all(lg->fd, OVER_BUDGET_LINE, sizeof(OVER_BUDGET_LINE) - 1);
	}
}

void ml_logger_write(struct ml_logger *lg, const void *data, size_t len)
{
	if (!lg || len == 0)
		return;
	pthread_mutex_lock(&lg->mu);
	append_locked(lg, data, len);
	pthread_mutex_unlock(&lg->mu);
}

static size_t format_line(char *line, size_t cap, enum ml_log_level lvl, const char *fmt, va_list ap)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = snprintf(line, cap, "[%lld.%03ld matchlock %s] ", (long long)ts.tv_sec,
			 ts.tv_nsec / 1000000, names[lvl]);
	vsnprintf(line + n, cap - (size_t)n - 1, fmt, ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	return len;
}

void ml_logger_printf(struct ml_logger *lg, enum ml_log_level lvl, const char *fmt, ...)
{
	if (!lg)
		return;
	char line[4096];
	va_list ap;
	va_start(ap, fmt);
	size_t len = format_line(line, sizeof(line), lvl, fmt, ap);
	va_end(ap);
	ml_logger_write(lg, line, len);
}

/* Escape sequences and other control bytes from the guest become '?': the file is shown on
 * terminals later. Tabs stay. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			*s = '?';
}

static bool take_token(struct ml_logger *lg)
{
	int64_t now = mono_ms();
	double cap = ML_LOGFILE_GUEST_LINES_PER_S * 10.0;
	lg->tokens += (double)(now - lg->refill_ms) * ML_LOGFILE_GUEST_LINES_PER_S / 1000.0;
	if (lg->tokens > cap)
		lg->tokens = cap;
	lg->refill_ms = now;
	if (lg->tokens < 1.0)
		return false;
	lg->tokens -= 1.0;
	return true;
}

void ml_logger_guest_line(struct ml_logger *lg, const char *prefix, const char *text)
{
	if (!lg)
		return;
	char line[1024];
	pthread_mutex_lock(&lg->mu);
	if (!take_token(lg)) {
		lg->guest_dropped++;
		pthread_mutex_unlock(&lg->mu);
		return;
	}
	if (lg->guest_dropped > lg->guest_dropped_reported) {
		int n = snprintf(line, sizeof(line), "[matchlock: %llu guest log lines dropped (rate limit)]\n",
				 (unsigned long long)(lg->guest_dropped - lg->guest_dropped_reported));
		append_locked(lg, line, (size_t)n);
		lg->guest_dropped_reported = lg->guest_dropped;
	}
	int n = snprintf(line, sizeof(line), "%s%s", prefix, text);
	size_t len = n < 0 ? 0 : (size_t)n >= sizeof(line) - 1 ? sizeof(line) - 2 : (size_t)n;
	line[len] = '\0';
	sanitize(line);
	line[len++] = '\n';
	append_locked(lg, line, len);
	pthread_mutex_unlock(&lg->mu);
}

void ml_logger_stats(struct ml_logger *lg, struct ml_logger_stats *st)
{
	pthread_mutex_lock(&lg->mu);
	*st = (struct ml_logger_stats){ lg->written, lg->dropped, lg->guest_dropped };
	pthread_mutex_unlock(&lg->mu);
}

static void thread_sink(void *arg, const char *line, size_t len)
{
	ml_logger_write(arg, line, len);
}

struct ml_logger *ml_logger_bind_thread(struct ml_logger *lg)
{
	struct ml_logger *prev = bound;
	bound = lg;
	ml_log_bind_thread(lg ? thread_sink : NULL, lg);
	return prev;
}
