/* tests/unit/base_logfile_test.c - a sandbox's vm.log: one byte budget for everything, guest
 * lines rate-limited and defanged, ml_log() of a bound thread lands in the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "base/logfile.h"

static char path[64];

static char *slurp(void)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/ml-logfile-test.%d", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void budget_covers_every_writer(void **state)
{
	(void)state;
	struct ml_logger *lg;
	struct ml_err e;
	assert_int_equal(ml_logger_open(path, 1000, &lg, &e), 0);
	char chunk[300];
	memset(chunk, 'o', sizeof(chunk));
	ml_logger_write(lg, chunk, sizeof(chunk));                  /* command output */
	ml_logger_printf(lg, ML_LOG_INFO, "%s", "diagnostic line");   /* our own */
	ml_logger_guest_line(lg, "[agent] ", "guest line");          /* the guest's */
	for (int i = 0; i < 10; i++)
		ml_logger_write(lg, chunk, sizeof(chunk));
	struct ml_logger_stats st;
	ml_logger_stats(lg, &st);
	assert_int_equal(st.written, 1000);
	assert_true(st.dropped > 2000);
	ml_logger_close(lg);
	_cleanup_free_ char *got = slurp();
	assert_non_null(strstr(got, "diagnostic line"));
	assert_non_null(strstr(got, "[agent] guest line"));
	assert_non_null(strstr(got, "reached its size budget"));
	assert_true(strlen(got) < 1000 + 100);
}

static void guest_lines_are_rate_limited_and_defanged(void **state)
{
	(void)state;
	struct ml_logger *lg;
	struct ml_err e;
	assert_int_equal(ml_logger_open(path, 0, &lg, &e), 0);
	ml_logger_guest_line(lg, "[agent] ", "evil \x1b[2J\x07 line\r");
	for (int i = 0; i < 100000; i++)
		ml_logger_guest_line(lg, "[agent] ", "flood");
	struct ml_logger_stats st;
	ml_logger_stats(lg, &st);
	/* a burst of 10 s worth at most, however fast the guest sends */
	assert_true(st.guest_lines_dropped >= 100000 - ML_LOGFILE_GUEST_LINES_PER_S * 10);
	ml_logger_close(lg);
	_cleanup_free_ char *got = slurp();
	assert_null(strchr(got, '\x1b'));
	assert_null(strchr(got, '\x07'));
	assert_null(strchr(got, '\r'));
	assert_non_null(strstr(got, "[agent] evil ?[2J? line?"));
}

static void bound_thread_diagnostics_reach_the_file(void **state)
{
	(void)state;
	struct ml_logger *lg;
	struct ml_err e;
	assert_int_equal(ml_logger_open(path, 0, &lg, &e), 0);
	ml_info("not bound yet");
	assert_null(ml_logger_bind_thread(lg));
	ml_info("bound: %d", 42);
	ml_debug("debug stays out of the file");
	assert_ptr_equal(ml_logger_bind_thread(NULL), lg);
	ml_info("unbound again");
	ml_logger_close(lg);
	_cleanup_free_ char *got = slurp();
	assert_null(strstr(got, "not bound yet"));
	assert_non_null(strstr(got, "matchlock info] bound: 42"));
	assert_null(strstr(got, "debug stays out"));
	assert_null(strstr(got, "unbound again"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(budget_covers_every_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(guest_lines_are_rate_limited_and_defanged, setup, teardown),
		cmocka_unit_test_setup_teardown(bound_thread_diagnostics_reach_the_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
