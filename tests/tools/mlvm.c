/* tests/tools/mlvm.c - drives one sandbox through the library, for tests and benchmarks that
 * need more than `run` offers: many concurrent execs, cancel, and exec/echo round-trip timing.
 *
 *   mlvm concurrent N        N execs at once; each prints its own markers and exits i%7
 *   mlvm cancel              cancel kills the whole process group of an exec
 *   mlvm rtt N               N raw echoes (PING), N execs of `true` and N of `sh -c true`: p50/p99
 *                            of each, in us; then the guest's own fork+exec of /bin/true
 *   mlvm rttpipe             the same one at a time, on request: lines on stdin (true, sh, spawn,
 *                            echo), one answer line each (us)
 *   mlvm idle SECONDS        boots, stays idle, prints the supervisor's peak RSS (VmHWM) in KiB
 *   mlvm flood N             one exec writes 1-byte writes as fast as it can while N short
 *                            execs run one after another: each must finish right within 10 s
 *
 * Image: $MLVM_IMAGE or the embedded default. No guest NIC, and execs with a fixed PATH, unless
 * $MLVM_LIKE_RUN=1 (a NIC, the image's environment: what `run` does). Exit 0 only if every
 * check held. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/loop.h"
#include "rpc/sandbox.h"

struct job {
	int idx;
	char out[256];
	size_t outlen;
	int code, done, failed;
	struct ctl *ctl;
	uint32_t stream;
};

static int jobs_left;
static struct ml_loop *loop;

static void j_output(void *arg, int fd, const uint8_t *d, size_t n)
{
	struct job *j = arg;
	if (fd == 1 && n && j->outlen + n < sizeof(j->out)) {
		memcpy(j->out + j->outlen, d, n);
		j->outlen += n;
	}
	ctl_exec_consumed(j->ctl, j->stream, n);
}
static void j_exited(void *arg, int code, int sig)
{
	struct job *j = arg;
	(void)sig;
	j->code = code;
	j->done = 1;
	if (--jobs_left == 0)
		ml_loop_stop(loop);
}
static void j_failed(void *arg, const char *msg)
{
	struct job *j = arg;
	fprintf(stderr, "exec %d failed: %s\n", j->idx, msg);
	j->failed = 1;
	if (--jobs_left == 0)
		ml_loop_stop(loop);
}
static const struct ctl_exec_ops job_ops = { .output = j_output, .exited = j_exited, .failed = j_failed };

static char *env_path[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
static char **exec_env = env_path; /* the timed execs' (rtt, rttpipe) */

static int start_job(struct ctl *ctl, struct job *j, const char *script)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
	struct proto_exec x = { .argv = argv, .env = env_path, .cwd = "/" };
	j->ctl = ctl;
	jobs_left++;
	return ctl_exec(ctl, &x, &job_ops, j, &j->stream);
}

static int run_concurrent(struct ctl *ctl, int n)
{
	struct job *jobs = calloc((size_t)n, sizeof(*jobs));
	char script[256];
	for (int i = 0; i < n; i++) {
		jobs[i].idx = i;
		snprintf(script, sizeof(script), "echo start-%d; sleep 1; echo end-%d; exit %d", i, i, i % 7);
		if (start_job(ctl, &jobs[i], script) < 0)
			return fprintf(stderr, "ctl_exec failed\n"), 1;
	}
	ml_loop_run(loop);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		char want[128];
		snprintf(want, sizeof(want), "start-%d\nend-%d\n", i, i);
		jobs[i].out[jobs[i].outlen] = '\0';
		if (jobs[i].failed || !jobs[i].done || jobs[i].code != i % 7 || strcmp(jobs[i].out, want)) {
			fprintf(stderr, "exec %d: code %d output [%s]\n", i, jobs[i].code, jobs[i].out);
			bad++;
		}
	}
	printf("concurrent: %d execs, %d wrong\n", n, bad);
	free(jobs);
	return bad != 0;
}

static void stop_cb(struct ml_loop *l, void *arg)
{
	(void)arg;
	ml_loop_stop(l);
}

static int run_cancel(struct ctl *ctl)
{
	struct job j = { 0 };
	start_job(ctl, &j, "sleep 300 & sleep 301 & sleep 302; echo not-cancelled");
	ml_loop_timer(loop, 1500, stop_cb, NULL);
	ml_loop_run(loop);
	ctl_exec_cancel(ctl, j.stream);
	ml_loop_run(loop); /* until the exec ends */
	struct job chk = { 0 };
	start_job(ctl, &chk, "sleep 0.2; ps -o comm | grep -c '^sleep' || true");
	ml_loop_run(loop);
	chk.out[chk.outlen] = '\0';
	int ok = j.done && (j.code == 143 || j.code == 137) && !strcmp(chk.out, "0\n");
	printf("cancel: exit %d, sleeps left [%s] -> %s\n", j.code, chk.out, ok ? "ok" : "WRONG");
	return !ok;
}

static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			v = atol(line + 6);
	if (f)
		fclose(f);
	return v;
}

/* ---- flood: a guest command making many tiny writes must not starve the VM's other execs ---- */
struct flood {
	struct ctl *ctl;
	uint32_t stream;
	uint64_t bytes, frames;
	int done, code;
};
static void f_output(void *arg, int fd, const uint8_t *d, size_t n)
{
	struct flood *f = arg;
	(void)fd;
	(void)d;
	f->bytes += n;
	f->frames += n > 0;
	ctl_exec_consumed(f->ctl, f->stream, n);
}
static void f_exited(void *arg, int code, int sig)
{
	struct flood *f = arg;
	(void)sig;
	f->done = 1;
	f->code = code;
	ml_loop_stop(loop);
}
static void f_failed(void *arg, const char *msg)
{
	struct flood *f = arg;
	fprintf(stderr, "flood exec failed: %s\n", msg);
	f->done = 1;
	f->code = -1;
	ml_loop_stop(loop);
}
static const struct ctl_exec_ops flood_ops = { .output = f_output, .exited = f_exited, .failed = f_failed };

/* Runs one short exec to its end (or 10 s); returns its latency in ms, -1 if it went wrong. */
static int64_t flood_probe_exec(struct ctl *ctl, int i)
{
	struct job j = { .idx = i };
	char script[64], want[32];
	snprintf(script, sizeof(script), "echo ok-%d", i);
	snprintf(want, sizeof(want), "ok-%d\n", i);
	int64_t t0 = ml_now_ms();
	if (start_job(ctl, &j, script) < 0)
		return -1;
	int timer = ml_loop_timer(loop, 10000, stop_cb, NULL);
	ml_loop_run(loop);
	ml_loop_cancel(loop, timer);
	ctl_exec_release(ctl, j.stream); /* j lives on this stack frame only */
	jobs_left = 0;
	j.out[j.outlen] = '\0';
	if (!j.done || j.code != 0 || strcmp(j.out, want)) {
		fprintf(stderr, "exec %d during the flood: done %d code %d output [%s]\n", i, j.done, j.code, j.out);
		return -1;
	}
	return ml_now_ms() - t0;
}

static int run_flood(struct ctl *ctl, int n)
{
	struct flood f = { .ctl = ctl };
	char *argv[] = { "dd", "if=/dev/zero", "bs=1", "count=100000000", NULL };
	struct proto_exec x = { .argv = argv, .env = env_path, .cwd = "/" };
	if (ctl_exec(ctl, &x, &flood_ops, &f, &f.stream) < 0)
		return fprintf(stderr, "ctl_exec failed\n"), 1;
	int timer = ml_loop_timer(loop, 2000, stop_cb, NULL); /* let it get going */
	ml_loop_run(loop);
	ml_loop_cancel(loop, timer);
	int bad = f.done; /* it must still be flooding */
	int64_t worst = 0, total = 0;
	for (int i = 0; i < n; i++) {
		int64_t ms = flood_probe_exec(ctl, i);
		if (ms < 0)
			bad++;
		worst = ms > worst ? ms : worst;
		total += ms > 0 ? ms : 0;
	}
	uint64_t bytes = f.bytes, frames = f.frames;
	ctl_exec_cancel(ctl, f.stream);
	timer = ml_loop_timer(loop, 10000, stop_cb, NULL);
	if (!f.done)
		ml_loop_run(loop);
	ml_loop_cancel(loop, timer);
	if (!f.done) {
		ctl_exec_release(ctl, f.stream);
		bad++;
	}
	printf("flood: %llu bytes in %llu frames while %d execs ran (avg %lld ms, worst %lld ms), "
	       "%d wrong; flood ended with %d; peak_rss_kib=%ld\n", (unsigned long long)bytes,
	       (unsigned long long)frames, n, (long long)(total / (n ? n : 1)), (long long)worst, bad,
	       f.code, peak_rss_kib());
	return bad != 0;
}

static int pongs_left;
static void on_pong(void *arg, const uint8_t *d, size_t n)
{
	(void)arg;
	(void)d;
	(void)n;
	if (--pongs_left == 0)
		ml_loop_stop(loop);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void report(const char *what, int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_i64);
	printf("%s p50_us=%lld p99_us=%lld\n", what, (long long)v[n / 2], (long long)v[(n * 99) / 100]);
}

/* One exec of argv, waited for: its round trip in us, or -1. */
static int64_t one_exec(struct ctl *ctl, char **argv)
{
	struct job j = { 0 };
	struct proto_exec x = { .argv = argv, .env = exec_env, .cwd = "/" };
	int64_t s = now_us();
	j.ctl = ctl;
	jobs_left = 1;
	ctl_exec(ctl, &x, &job_ops, &j, &j.stream);
	ml_loop_run(loop);
	int64_t t = now_us() - s;
	return j.done && j.code == 0 ? t : -1;
}

static char *true_argv[] = { "true", NULL };
/* the same through `sh -c`, which is what the JSON-RPC server asks the agent for */
static char *sh_true_argv[] = { "sh", "-c", "true", NULL };

/* The floor of any exec: the guest kernel creating a process. One exec runs 200 of them. */
static int64_t guest_spawn_us(struct ctl *ctl)
{
	struct job loopj = { 0 };
	int64_t s0 = now_us();
	start_job(ctl, &loopj, "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done");
	ml_loop_run(loop);
	return (now_us() - s0) / 200;
}

static int run_rtt(struct ctl *ctl, int n)
{
	int64_t *t = calloc((size_t)n, sizeof(*t));
	for (int i = 0; i < n; i++) {
		int64_t s = now_us();
		pongs_left = 1;
		ctl_ping(ctl, "ping", 4);
		ml_loop_run(loop);
		t[i] = now_us() - s;
	}
	report("echo", t, n);
	for (int i = 0; i < n; i++)
		if ((t[i] = one_exec(ctl, true_argv)) < 0)
			return fprintf(stderr, "exec true failed\n"), 1;
	report("exec", t, n);
	for (int i = 0; i < n; i++)
		if ((t[i] = one_exec(ctl, sh_true_argv)) < 0)
			return fprintf(stderr, "exec sh -c true failed\n"), 1;
	report("exec-sh", t, n);
	printf("guest-spawn avg_us=%lld\n", (long long)guest_spawn_us(ctl));
	free(t);
	return 0;
}

/* Commands on stdin, one per line, each answered with one line: `true` / `sh` (an exec of
 * `true` / `sh -c true`: its round trip in us), `spawn` (guest-spawn avg us), `echo`. A
 * benchmark interleaves these with other clients' round trips under the same load. */
static int run_rttpipe(struct ctl *ctl)
{
	char line[64];
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		int64_t t = -1;
		if (!strcmp(line, "true"))
			t = one_exec(ctl, true_argv);
		else if (!strcmp(line, "sh"))
			t = one_exec(ctl, sh_true_argv);
		else if (!strcmp(line, "spawn"))
			t = guest_spawn_us(ctl);
		else if (!strcmp(line, "echo")) {
			int64_t s = now_us();
			pongs_left = 1;
			ctl_ping(ctl, "ping", 4);
			ml_loop_run(loop);
			t = now_us() - s;
		}
		printf("%lld\n", (long long)t);
		fflush(stdout);
		if (t < 0)
			return 1;
	}
	return 0;
}

static void on_dead(void *arg, struct sandbox *sb, const char *msg)
{
	(void)arg;
	(void)sb;
	fprintf(stderr, "sandbox died: %s\n", msg);
	ml_loop_stop(loop);
}

static int created; /* 1 ready, -1 failed */
static struct ml_err create_err;
static void on_ready(void *arg, struct sandbox *sb)
{
	(void)arg;
	(void)sb;
	created = 1;
	ml_loop_stop(loop);
}
static void on_failed(void *arg, struct sandbox *sb, const struct ml_err *e)
{
	(void)arg;
	(void)sb;
	created = -1;
	create_err = *e;
	ml_loop_stop(loop);
}
static const struct sandbox_events events = { .ready = on_ready, .failed = on_failed, .dead = on_dead, .pong = on_pong };

int main(int argc, char **argv)
{
	if (argc < 2)
		return fprintf(stderr, "usage: mlvm concurrent N | cancel | rtt N | rttpipe | idle S | flood N\n"), 2;
	const char *img = getenv("MLVM_IMAGE");
	static char *dns[] = { "8.8.8.8", NULL };
	struct ml_settings settings;
	struct ml_err e = { 0 };
	if (settings_from_env(&settings, &e) < 0)
		return fprintf(stderr, "%s\n", e.msg), 1;
	struct sandbox_config o = { .settings = &settings, .image = img ? img : SANDBOX_DEFAULT_IMAGE,
				    .cpus = 1, .mem_mb = 512, .disk_mb = 1024, .dns = dns };
	/* MLVM_LIKE_RUN=1: what `run` (and an SDK's create) would make by default: a guest NIC
	 * and its network thread, execs with the image's environment (benchmarks compare like
	 * with like) */
	const char *like_run = getenv("MLVM_LIKE_RUN");
	if (like_run && !strcmp(like_run, "1")) {
		o.network = true;
		o.mtu = 1500;
		o.block_private_ips = true;
	}
	struct sandbox *sb = NULL;
	ml_loop_new(&loop);
	if (sandbox_start(&o, loop, &events, NULL, &sb, &e) < 0)
		return fprintf(stderr, "%s\n", e.msg), 1;
	while (!created)
		ml_loop_run(loop);
	if (created < 0) {
		fprintf(stderr, "%s\n", create_err.msg);
		sandbox_destroy(sb, true);
		return 1;
	}
	int rc = 2;
	struct ctl *ctl = sandbox_ctl(sb);
	if (o.network && sandbox_image_config(sb)->env)
		exec_env = sandbox_image_config(sb)->env;
	if (!strcmp(argv[1], "concurrent") && argc > 2)
		rc = run_concurrent(ctl, atoi(argv[2]));
	else if (!strcmp(argv[1], "cancel"))
		rc = run_cancel(ctl);
	else if (!strcmp(argv[1], "rtt") && argc > 2)
		rc = run_rtt(ctl, atoi(argv[2]));
	else if (!strcmp(argv[1], "rttpipe"))
		rc = run_rttpipe(ctl);
	else if (!strcmp(argv[1], "flood") && argc > 2)
		rc = run_flood(ctl, atoi(argv[2]));
	else if (!strcmp(argv[1], "idle") && argc > 2) {
		ml_loop_timer(loop, atoi(argv[2]) * 1000L, stop_cb, NULL);
		ml_loop_run(loop);
		printf("peak_rss_kib=%ld\n", peak_rss_kib());
		rc = 0;
	}
	sandbox_destroy(sb, true);
	ml_loop_free(loop);
	settings_free(&settings);
	return rc;
}
