/* tests/unit/mitm_sockbuf_test.c - the per-VM budget for upstream socket buffers
 * (mitm/sockbuf.c): while it holds an autotuned socket's maximum, sockets are left to
 * autotuning and charged that maximum; after that each gets fixed SO_SNDBUF/SO_RCVBUF (seen
 * through getsockopt) of a sixteenth of what is left, never under the floor, so 500
 * sockets stay within budget + 500 x 2 x floor; releasing gives it all back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mitm/internal.h"
#include "mitm/mitm.h"

static struct mitm *make(size_t budget)
{
	struct mitm_config c = { .upstream_buf_budget = budget };
	struct ml_err e;
	struct mitm *m = NULL;

	assert_int_equal(mitm_new(&c, &m, &e), 0);
	return m;
}

static int sock_opt(int fd, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, opt, &v, &l), 0);
	return v;
}

static void a_small_budget_gives_fixed_buffers_down_to_the_floor(void **state)
{
	struct mitm *m = make(1 << 20);
	int fds[500];
	uint32_t charged[500];
	struct mitm_stats st;

	(void)state;
	assert_true(m->sockbuf_autotuned > (1u << 20));  /* too big for this budget */
	for (int i = 0; i < 500; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		charged[i] = sockbuf_apply(m, fds[i]);
	}
	/* the first: a sixteenth of 1 MiB each way; the kernel reports twice what was asked */
	assert_int_equal(charged[0], 2 * 65536);
	assert_int_equal(sock_opt(fds[0], SO_SNDBUF), 2 * 65536);
	assert_int_equal(sock_opt(fds[0], SO_RCVBUF), 2 * 65536);
	/* the last: the floor */
	assert_int_equal(charged[499], 2 * SOCKBUF_MIN);
	assert_int_equal(sock_opt(fds[499], SO_SNDBUF), 2 * (int)SOCKBUF_MIN);
	mitm_stats(m, &st);
	assert_int_equal(st.sockbuf_fixed, 500);
	assert_true(st.sockbuf_in_use <= (1u << 20) + 500 * 2 * SOCKBUF_MIN);
	for (int i = 0; i < 500; i++) {
		sockbuf_release(m, charged[i]);
		close(fds[i]);
	}
	mitm_stats(m, &st);
	assert_int_equal(st.sockbuf_in_use, 0);
	mitm_free(m);
}

static void a_budget_that_holds_autotuning_leaves_the_first_sockets_alone(void **state)
{
	struct mitm *m = make(0);  /* the default */
	size_t budget = m->cfg.upstream_buf_budget;
	int fd = socket(AF_INET, SOCK_STREAM, 0), fd2 = socket(AF_INET, SOCK_STREAM, 0);
	int dflt = sock_opt(fd, SO_RCVBUF);
	uint32_t c1, c2;

	(void)state;
	assert_int_equal(budget, SOCKBUF_BUDGET_DEFAULT);
	m->cfg.upstream_buf_budget = m->sockbuf_autotuned + 1;  /* room for exactly one */
	c1 = sockbuf_apply(m, fd);
	assert_int_equal(c1, m->sockbuf_autotuned);
	assert_int_equal(sock_opt(fd, SO_RCVBUF), dflt);      /* untouched: autotuning */
	c2 = sockbuf_apply(m, fd2);
	assert_int_equal(c2, 2 * SOCKBUF_MIN);                  /* 1 byte left: the floor */
	sockbuf_release(m, c1);
	sockbuf_release(m, c2);
	assert_int_equal(m->sockbuf_in_use, 0);
	close(fd);
	close(fd2);
	mitm_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_small_budget_gives_fixed_buffers_down_to_the_floor),
		cmocka_unit_test(a_budget_that_holds_autotuning_leaves_the_first_sockets_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
