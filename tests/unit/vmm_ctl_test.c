/* tests/unit/vmm_ctl_test.c - the host end of the control channel against a hostile fake guest
 * on a socketpair: HELLO/READY/ERROR count only in their boot state (a flood of replays is
 * ignored and queues nothing), an exec's callbacks never run after its EXIT, its ERROR or
 * ctl_exec_release (the callbacks use freed memory otherwise, which ASan reports: `make asan`),
 * a 1-byte STDOUT flood from a guest that never reads merges its CREDITs and ends at the
 * window instead of growing the queue, and the queue's byte bound refuses frames, stops
 * reading the guest and wakes stdin when it drains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "vmm/vmm.h"

/* ---- the fake guest ---- */
struct guest {
	int fd;                 /* guest end, blocking writes, nonblocking reads */
	struct proto_reader rd;
	int frames[128];        /* frames seen by type */
	uint64_t credit_sum;
	uint32_t last_stream;
};

struct host {
	struct ctl *c;
	int fd;
	int hellos, readies, config_failures;
	char closed[256];
	bool configure_on_hello;
};

static void g_send(struct guest *g, uint16_t type, uint32_t stream, const void *p, size_t n)
{
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_msg_frame(&m, type, stream, p, n), 0);
	for (size_t off = 0; off < m.len;) {
		ssize_t w = write(g->fd, m.data + off, m.len - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
	proto_msg_free(&m);
}

/* Reads what the host sent so far and counts it. */
static void g_drain(struct guest *g)
{
	for (;;) {
		size_t room;
		uint8_t *p = proto_reader_space(&g->rd, &room);
		ssize_t n = read(g->fd, p, room);
		if (n <= 0)
			break;
		proto_reader_commit(&g->rd, (size_t)n);
		struct proto_frame f;
		while (proto_reader_next(&g->rd, &f) == 1) {
			g->frames[f.type]++;
			g->last_stream = f.stream;
			struct cursor cur = { { f.payload, f.len }, 0, 0 };
			if (f.type == PT_CREDIT)
				g->credit_sum += cur_u32(&cur);
		}
	}
}

static void g_hello(struct guest *g)
{
	uint8_t b[4 + 11];
	put_u32(b, PROTO_VERSION);
	memcpy(b + 4, "agent 6.1.0", 11);
	g_send(g, PT_HELLO, 0, b, sizeof(b));
}

/* ---- the host's callbacks ---- */
static void on_hello(void *arg, uint32_t version, const char *info)
{
	struct host *h = arg;
	(void)version;
	(void)info;
	h->hellos++;
	if (h->configure_on_hello) {
		struct proto_config cfg = { .hostname = "t" };
		assert_int_equal(ctl_configure(h->c, &cfg), 0);
	}
}
static void on_ready(void *arg) { ((struct host *)arg)->readies++; }
static void on_config_failed(void *arg, const char *msg)
{
	(void)msg;
	((struct host *)arg)->config_failures++;
}
static void on_closed(void *arg, const char *msg)
{
	struct host *h = arg;
	snprintf(h->closed, sizeof(h->closed), "%s", msg);
}
static const struct ctl_ops host_ops = {
	.hello = on_hello, .ready = on_ready, .config_failed = on_config_failed, .closed = on_closed,
};

/* An exec client whose state lives on the heap, as a real one's does: a callback after the
 * client freed it is a use after free. */
struct client {
	struct host *h;
	uint32_t stream;
	int outputs, exits, failures, stdin_readies;
	bool free_on_end;
};
static void c_output(void *arg, int fd, const uint8_t *d, size_t n)
{
	struct client *cl = arg;
	(void)fd;
	(void)d;
	cl->outputs++;
	ctl_exec_consumed(cl->h->c, cl->stream, n);
}
static void c_exited(void *arg, int code, int sig)
{
	struct client *cl = arg;
	(void)code;
	(void)sig;
	cl->exits++;
	if (cl->free_on_end)
		free(cl);
}
static void c_failed(void *arg, const char *msg)
{
	struct client *cl = arg;
	(void)msg;
	cl->failures++;
	if (cl->free_on_end)
		free(cl);
}
static void c_stdin_ready(void *arg) { ((struct client *)arg)->stdin_readies++; }
static const struct ctl_exec_ops client_ops = {
	.output = c_output, .exited = c_exited, .failed = c_failed, .stdin_ready = c_stdin_ready,
};

static struct client *start_exec(struct host *h)
{
	struct client *cl = calloc(1, sizeof(*cl));
	assert_non_null(cl);
	cl->h = h;
	char *argv[] = { "true", NULL };
	struct proto_exec x = { .argv = argv };
	assert_int_equal(ctl_exec(h->c, &x, &client_ops, cl, &cl->stream), 0);
	return cl;
}

/* sndbuf: the host end's send buffer (small: a guest that does not read fills it quickly). */
static void setup_pair(struct host *h, struct guest *g, int sndbuf)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	if (sndbuf)
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	int big = 8 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	memset(h, 0, sizeof(*h));
	memset(g, 0, sizeof(*g));
	h->fd = sv[0];
	g->fd = sv[1];
	proto_reader_init(&g->rd);
	assert_int_equal(ctl_new(h->fd, &host_ops, h, &h->c), 0);
}

static void teardown_pair(struct host *h, struct guest *g)
{
	ctl_free(h->c);
	close(h->fd);
	close(g->fd);
	proto_reader_free(&g->rd);
}

/* The host reads everything the guest has sent (as its loop would, one event at a time). */
static void host_read(struct host *h)
{
	for (int i = 0; i < 1000 && ctl_wants_read(h->c); i++) {
		char b;
		if (recv(h->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
			break;
		if (ctl_on_readable(h->c) < 0)
			break;
	}
}

static void g_nonblocking_reads(struct guest *g) { fcntl(g->fd, F_SETFL, O_NONBLOCK); }

/* ---- tests ---- */
static void boot_frames_count_only_in_their_state(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 0);
	g_nonblocking_reads(&g);
	h.configure_on_hello = true;
	g_send(&g, PT_READY, 0, NULL, 0);               /* before HELLO */
	g_send(&g, PT_ERROR, 0, "early", 5);
	g_hello(&g);
	for (int round = 0; round < 100; round++) {      /* a flood of replayed HELLOs */
		for (int i = 0; i < 1000; i++)
			g_hello(&g);
		host_read(&h);
	}
	assert_int_equal(h.hellos, 1);
	assert_int_equal(h.readies, 0);
	assert_int_equal(h.config_failures, 0);
	assert_int_equal(ctl_ignored_frames(h.c), 100002);
	struct proto_config cfg = { .hostname = "again" };
	assert_int_equal(ctl_configure(h.c, &cfg), -EALREADY);
	g_drain(&g);
	assert_int_equal(g.frames[PT_CONFIG], 1);         /* one answer, not 100,001 */
	assert_int_equal(ctl_queued_bytes(h.c), 0);
	g_send(&g, PT_READY, 0, NULL, 0);
	g_send(&g, PT_READY, 0, NULL, 0);               /* replayed */
	g_send(&g, PT_ERROR, 0, "late", 4);             /* after READY */
	g_hello(&g);
	host_read(&h);
	assert_int_equal(h.readies, 1);
	assert_int_equal(h.config_failures, 0);
	assert_int_equal(h.hellos, 1);
	assert_int_equal(ctl_ignored_frames(h.c), 100005);
	assert_string_equal(h.closed, "");
	teardown_pair(&h, &g);
}

static void config_error_counts_while_waiting_for_ready(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 0);
	h.configure_on_hello = true;
	g_hello(&g);
	g_send(&g, PT_ERROR, 0, "no disk \x1b[2J", 13);
	g_send(&g, PT_READY, 0, NULL, 0);               /* after a failure: out of turn */
	host_read(&h);
	assert_int_equal(h.config_failures, 1);
	assert_int_equal(h.readies, 0);
	assert_int_equal(ctl_ignored_frames(h.c), 1);
	teardown_pair(&h, &g);
}

static void exit_or_error_replayed_reaches_no_callback(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 0);
	struct client *a = start_exec(&h), *b = start_exec(&h);
	a->free_on_end = b->free_on_end = true;
	uint32_t sa = a->stream, sb = b->stream;
	uint8_t exit_frame[8] = { 0 };
	g_send(&g, PT_EXIT, sa, exit_frame, 8);
	g_send(&g, PT_EXIT, sa, exit_frame, 8);        /* replayed: a is freed by now */
	g_send(&g, PT_ERROR, sa, "late", 4);
	g_send(&g, PT_STDOUT, sa, "x", 1);
	g_send(&g, PT_STARTED, sa, exit_frame, 4);
	g_send(&g, PT_ERROR, sb, "exec: nope", 10);
	g_send(&g, PT_EXIT, sb, exit_frame, 8);        /* after its ERROR: b is freed */
	g_send(&g, PT_ERROR, sb, "again", 5);
	host_read(&h);
	assert_string_equal(h.closed, "");
	/* ASan would have reported any callback on a or b above; the channel is still good */
	struct client *c = start_exec(&h);
	g_send(&g, PT_STDOUT, c->stream, "hi", 2);
	host_read(&h);
	assert_int_equal(c->outputs, 1);
	free(c);
	teardown_pair(&h, &g);
}

static void released_stream_reaches_no_callback_and_is_cancelled(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 0);
	g_nonblocking_reads(&g);
	struct client *a = start_exec(&h);
	uint32_t sa = a->stream;
	g_send(&g, PT_STDOUT, sa, "before", 6);
	host_read(&h);
	assert_int_equal(a->outputs, 1);
	assert_int_equal(ctl_exec_release(h.c, sa), 0);
	free(a);                                       /* the client is gone */
	assert_int_equal(ctl_exec_release(h.c, sa), 0); /* twice is harmless */
	uint8_t exit_frame[8] = { 0 };
	g_send(&g, PT_STDOUT, sa, "after", 5);
	g_send(&g, PT_STDERR, sa, "after", 5);
	g_send(&g, PT_CREDIT, sa, exit_frame, 4);
	g_send(&g, PT_EXIT, sa, exit_frame, 8);
	g_send(&g, PT_ERROR, sa, "late", 4);
	host_read(&h);
	assert_string_equal(h.closed, "");
	g_drain(&g);
	assert_int_equal(g.frames[PT_EXEC], 1);
	assert_int_equal(g.frames[PT_CANCEL], 1);
	assert_int_equal(ctl_exec_stdin(h.c, sa, "x", 1), -ENOENT);
	teardown_pair(&h, &g);
}

/* A guest that never reads and floods 1-byte STDOUT frames, each consumed at once: CREDITs
 * are owed, not queued one per chunk, so the queue stays short; the guest has then sent past
 * the credits it was given and loses the channel at the window. */
static void one_byte_flood_merges_credits_and_ends_at_the_window(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 4096);
	struct client *a = start_exec(&h);
	size_t max_queued = 0;
	int sent = 0;
	uint8_t batch[13 * 1000];
	for (int i = 0; i < 1000; i++) {
		put_u32(batch + 13 * i, 1);
		put_u16(batch + 13 * i + 4, PT_STDOUT);
		put_u16(batch + 13 * i + 6, 0);
		put_u32(batch + 13 * i + 8, a->stream);
		batch[13 * i + 12] = 'x';
	}
	while (!h.closed[0] && sent < 4000000) {
		assert_int_equal(write(g.fd, batch, sizeof(batch)), (ssize_t)sizeof(batch));
		sent += 1000;
		host_read(&h);
		if (ctl_queued_bytes(h.c) > max_queued)
			max_queued = ctl_queued_bytes(h.c);
	}
	printf("flood: %d frames sent, %d taken, queue peak %zu bytes, channel: %s\n", sent,
	       a->outputs, max_queued, h.closed);
	assert_true(max_queued < (64u << 10) + 64);
	assert_true(a->outputs >= (int)PROTO_WINDOW);
	assert_non_null(strstr(h.closed, "overran its output window"));
	assert_int_equal(a->failures, 1);
	free(a);
	teardown_pair(&h, &g);
}

/* While the queue is long, consumed output becomes one CREDIT per stream, sent once it drains. */
static void credits_owed_while_the_queue_is_long_go_out_as_one(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 4096);
	struct client *a = start_exec(&h);
	static uint8_t in[PROTO_WINDOW];
	assert_int_equal(ctl_exec_stdin(h.c, a->stream, in, sizeof(in)), (ssize_t)sizeof(in));
	assert_true(ctl_queued_bytes(h.c) > (64u << 10));
	for (int i = 0; i < 500; i++)
		g_send(&g, PT_STDOUT, a->stream, "y", 1);
	host_read(&h);
	assert_int_equal(a->outputs, 500);
	g_nonblocking_reads(&g);
	for (int i = 0; i < 1000 && (ctl_wants_write(h.c) || i < 2); i++) {
		g_drain(&g);
		assert_true(ctl_on_writable(h.c) >= 0);
	}
	g_drain(&g);
	assert_int_equal(g.credit_sum, 500);
	assert_true(g.frames[PT_CREDIT] <= 2);
	free(a);
	teardown_pair(&h, &g);
}

/* Stdin for many streams into a guest that does not read: the queue stops at its bound, the
 * host stops reading the guest past half of it, and once the guest drains stdin is woken. */
static void queue_bound_refuses_frames_pauses_reading_and_wakes_stdin(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 4096);
	enum { N = 24 };
	struct client *cl[N];
	static uint8_t in[PROTO_WINDOW];
	size_t taken = 0;
	int short_ones = 0;
	for (int i = 0; i < N; i++)
		cl[i] = start_exec(&h);
	for (int i = 0; i < N; i++) {
		ssize_t n = ctl_exec_stdin(h.c, cl[i]->stream, in, sizeof(in));
		assert_true(n >= 0);
		taken += (size_t)n;
		short_ones += n < (ssize_t)sizeof(in);
	}
	assert_true(short_ones > 0);
	assert_true(ctl_queued_bytes(h.c) <= CTL_QUEUE_MAX);
	assert_false(ctl_wants_read(h.c));
	uint8_t pad[64] = { 0 };
	while (ctl_ping(h.c, pad, sizeof(pad)) == 0)
		;
	assert_int_equal(ctl_ping(h.c, pad, sizeof(pad)), -ENOBUFS);
	char *argv[] = { "true", NULL };
	struct proto_exec x = { .argv = argv };
	uint32_t id;
	assert_int_equal(ctl_exec(h.c, &x, &client_ops, NULL, &id), -ENOBUFS);
	assert_true(ctl_queued_bytes(h.c) <= CTL_QUEUE_MAX);
	g_send(&g, PT_STDOUT, cl[0]->stream, "z", 1);
	assert_int_equal(ctl_on_readable(h.c), 0);      /* not read while paused */
	assert_int_equal(cl[0]->outputs, 0);
	g_nonblocking_reads(&g);
	for (int i = 0; i < 10000 && ctl_wants_write(h.c); i++) {
		g_drain(&g);
		assert_true(ctl_on_writable(h.c) >= 0);
	}
	assert_true(ctl_wants_read(h.c));
	int woken = 0;
	for (int i = 0; i < N; i++)
		woken += cl[i]->stdin_readies > 0;
	assert_int_equal(woken, short_ones);
	host_read(&h);
	assert_int_equal(cl[0]->outputs, 1);
	printf("bound: %zu stdin bytes taken of %zu asked, %d streams woken\n", taken,
	       (size_t)N * sizeof(in), woken);
	for (int i = 0; i < N; i++)
		free(cl[i]);
	teardown_pair(&h, &g);
}

static void broken_channel_fails_each_exec_once(void **state)
{
	(void)state;
	struct host h;
	struct guest g;
	setup_pair(&h, &g, 0);
	struct client *a = start_exec(&h), *b = start_exec(&h);
	a->free_on_end = b->free_on_end = true;
	uint8_t bad[12] = { 0xff, 0xff, 0xff, 0xff };    /* a length past the maximum */
	assert_int_equal(write(g.fd, bad, sizeof(bad)), (ssize_t)sizeof(bad));
	assert_true(ctl_on_readable(h.c) < 0);
	assert_non_null(strstr(h.closed, "malformed"));
	assert_true(ctl_on_readable(h.c) < 0);           /* and nothing more happens */
	teardown_pair(&h, &g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(boot_frames_count_only_in_their_state),
		cmocka_unit_test(config_error_counts_while_waiting_for_ready),
		cmocka_unit_test(exit_or_error_replayed_reaches_no_callback),
		cmocka_unit_test(released_stream_reaches_no_callback_and_is_cancelled),
		cmocka_unit_test(one_byte_flood_merges_credits_and_ends_at_the_window),
		cmocka_unit_test(credits_owed_while_the_queue_is_long_go_out_as_one),
		cmocka_unit_test(queue_bound_refuses_frames_pauses_reading_and_wakes_stdin),
		cmocka_unit_test(broken_channel_fails_each_exec_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
