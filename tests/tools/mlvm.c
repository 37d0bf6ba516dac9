/* tests/tools/mlvm.c - drives one sandbox through the library, for tests and benchmarks that
 * need more than `run` offers: many concurrent execs, cancel, and exec/echo round-trip timing.
 *
 *   mlvm concurrent N        N execs at once; each prints its own markers and exits i%7
 *   mlvm cancel              cancel kills the whole process group of an exec
 *   mlvm rtt N               N raw echoes (PING) and N execs of `true`: p50/p99 of each, in us
 *   mlvm idle SECONDS        boots, stays idle, prints the supervisor's peak RSS (VmHWM) in KiB
 *
 * Image: $MLVM_IMAGE or the embedded default. Exit 0 only if every check held. */
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
	char *argv[] = { "true", NULL };
	for (int i = 0; i < n; i++) {
		struct job j = { 0 };
		struct proto_exec x = { .argv = argv, .env = env_path, .cwd = "/" };
		int64_t s = now_us();
		j.ctl = ctl;
		jobs_left = 1;
		ctl_exec(ctl, &x, &job_ops, &j, &j.stream);
		ml_loop_run(loop);
		t[i] = now_us() - s;
		if (!j.done || j.code != 0)
			return fprintf(stderr, "exec true failed\n"), 1;
	}
	report("exec", t, n);
	/* The floor of any exec: the guest kernel creating a process. One exec runs 200 of them. */
	struct job loopj = { 0 };
	int64_t s0 = now_us();
	start_job(ctl, &loopj, "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done");
	ml_loop_run(loop);
	printf("guest-spawn avg_us=%lld\n", (long long)((now_us() - s0) / 200));
	free(t);
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

int main(int argc, char **argv)
{
	if (argc < 2)
		return fprintf(stderr, "usage: mlvm concurrent N | cancel | rtt N | idle S\n"), 2;
	const char *img = getenv("MLVM_IMAGE");
	static char *dns[] = { "8.8.8.8", NULL };
	struct ml_settings settings;
	struct ml_err e = { 0 };
	if (settings_from_env(&settings, &e) < 0)
		return fprintf(stderr, "%s\n", e.msg), 1;
	struct sandbox_config o = { .settings = &settings, .image = img ? img : SANDBOX_DEFAULT_IMAGE,
				    .cpus = 1, .mem_mb = 512, .disk_mb = 1024, .dns = dns };
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
	if (!strcmp(argv[1], "concurrent") && argc > 2)
		rc = run_concurrent(ctl, atoi(argv[2]));
	else if (!strcmp(argv[1], "cancel"))
		rc = run_cancel(ctl);
	else if (!strcmp(argv[1], "rtt") && argc > 2)
		rc = run_rtt(ctl, atoi(argv[2]));
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
