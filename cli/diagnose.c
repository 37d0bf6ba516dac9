/* cli/diagnose.c - `matchlock diagnose [--json]`: host checks for this rootless design (see
 * diagnose_checks.c), then, as the final check, a real VM: the embedded default image boots
 * and runs `true`, timed. One line per check (`✓|⚠|✗ name: message`, `  fix: hint`), or the
 * reference's JSON; any failed check makes the command fail. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/diagnose.h"
#include "rpc/sandbox.h"

#define BOOT_TIMEOUT_MS 150000

void diag_set(struct diag_check *c, enum diag_status st, const char *fix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
	c->status = st;
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
}

struct diag_check *diag_add(struct diag_report *r, const char *name)
{
	static struct diag_check spare; /* never reached: DIAG_MAX is above the number of checks */
	struct diag_check *c = r->n < DIAG_MAX ? &r->c[r->n++] : &spare;
	*c = (struct diag_check){ .name = name, .status = DIAG_PASS };
	return c;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the child's output until it closes it or the deadline passes; keeps the last bytes. */
static bool drain(int fd, int64_t deadline, char *out, size_t n)
{
	size_t len = 0;
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		char buf[4096];
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return true;
		for (ssize_t i = 0; i < got; i++) {
			if (len + 1 >= n) { /* keep the end: the error is on the last line */
				memmove(out, out + n / 2, len - n / 2);
				len -= n / 2;
			}
			out[len++] = buf[i];
		}
		out[len] = '\0';
	}
}

int diag_run(char *const argv[], int timeout_ms, char *out, size_t n)
{
	int p[2];
	out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	bool done = drain(p[0], now_ms() + timeout_ms, out, n);
	close(p[0]);
	if (!done) {
		/* `run` cleans its VM up on SIGTERM; SIGKILL only if it does not */
		kill(pid, SIGTERM);
		for (int i = 0; i < 100 && waitpid(pid, NULL, WNOHANG) == 0; i++)
			usleep(50000);
		kill(pid, SIGKILL);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return done ? st : -ETIMEDOUT;
}

/* The line that says why `run` failed: its first line that is not progress (an error may
 * carry the console's tail after it). */
static const char *reason_line(char *s)
{
	char *line = s;
	while (!strncmp(line, "Built rootfs from ", 18) && strchr(line, '\n'))
		line = strchr(line, '\n') + 1;
	line[strcspn(line, "\n")] = '\0';
	return line;
}

/* The whole path a user's first `run` takes, as this user: image import, rootfs, initramfs,
 * boot, CONFIG, one exec, teardown. */
static void diag_boot(struct diag_report *r, bool prerequisites_ok)
{
	struct diag_check *c = diag_add(r, "boot");
	if (!prerequisites_ok)
		return diag_set(c, DIAG_FAIL, "fix the failed checks above first", "not attempted: a check above failed");
	char out[2048];
	char *const argv[] = { "/proc/self/exe", "run", "--image", SANDBOX_DEFAULT_IMAGE, "--no-network", "--",
			       "true", NULL };
	int64_t t0 = now_ms();
	int st = diag_run(argv, BOOT_TIMEOUT_MS, out, sizeof(out));
	double secs = (double)(now_ms() - t0) / 1000.0;
	if (st == -ETIMEDOUT)
		return diag_set(c, DIAG_FAIL, "run `MATCHLOCK_LOG=debug matchlock run --image " SANDBOX_DEFAULT_IMAGE
				" -- true` to see where it stops", "no answer within %d s", BOOT_TIMEOUT_MS / 1000);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return diag_set(c, DIAG_FAIL, "see the message; `MATCHLOCK_LOG=debug matchlock run --image "
				SANDBOX_DEFAULT_IMAGE " -- true` shows every step", "booting %s and running `true` "
				"failed: %s", SANDBOX_DEFAULT_IMAGE, out[0] ? reason_line(out) : "no output");
	char why[320];
	const char *accel = vmm_accel_choose(cli_settings()->accel, why, sizeof(why)) == VMM_ACCEL_KVM ? "KVM" : "TCG";
	diag_set(c, DIAG_PASS, NULL, "booted %s and ran `true` in %.1f s (%s)", SANDBOX_DEFAULT_IMAGE, secs, accel);
}

static const char *status_word(enum diag_status s)
{
	return s == DIAG_PASS ? "pass" : s == DIAG_WARN ? "warn" : "fail";
}

static void print_text(const struct diag_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct diag_check *c = &r->c[i];
		const char *mark = c->status == DIAG_PASS ? "✓" : c->status == DIAG_WARN ? "⚠" : "✗";
		printf("%s %s: %s\n", mark, c->name, c->message);
		if (c->fix[0])
			printf("  fix: %s\n", c->fix);
	}
}

static void print_json(const struct diag_report *r, bool ok)
{
	json_t *checks = json_array();
	for (size_t i = 0; checks && i < r->n; i++) {
		const struct diag_check *c = &r->c[i];
		json_t *o = json_pack("{s:s, s:s, s:s}", "name", c->name, "status", status_word(c->status),
				      "message", c->message);
		if (o && c->fix[0])
			json_object_set_new(o, "fix", json_string(c->fix));
		json_array_append_new(checks, o);
	}
	json_t *root = json_pack("{s:b, s:o}", "ok", ok, "checks", checks);
	char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	printf("%s\n", s ? s : "{\"ok\": false, \"checks\": []}");
	free(s);
	json_decref(root);
}

static bool failed(const struct diag_report *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->c[i].name, name))
			return r->c[i].status == DIAG_FAIL;
	return false;
}

int cmd_diagnose(int argc, char **argv, struct ml_err *e)
{
	bool json = false;
	struct flag t[] = {
		{ "json", 0, FLAG_BOOL, &json, "Output machine-readable JSON", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	_cleanup_strv_clear_ struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Check that this host can run sandboxes: the engine, KVM or "
			       "why not, the guest's files, directories, limits, and a real boot.\n\nUsage:\n"
			       "  matchlock diagnose [flags]\n", e);
	if (r != 0 || (pos.n && (r = ml_err_set(e, -EINVAL, "accepts 0 arg(s), received %zu", pos.n))))
		return r < 0 ? r : 0;
	struct diag_report rep = { .n = 0 };
	diag_engine(&rep);
	diag_kvm(&rep);
	diag_assets(&rep);
	diag_dirs(&rep);
	diag_libslirp(&rep);
	diag_limits(&rep);
	diag_boot(&rep, !failed(&rep, "engine") && !failed(&rep, "guest-kernel") && !failed(&rep, "guest-agent") &&
			!failed(&rep, "state-dir") && !failed(&rep, "cache-dir"));
	bool ok = true;
	for (size_t i = 0; i < rep.n; i++)
		ok &= rep.c[i].status != DIAG_FAIL;
	if (json)
		print_json(&rep, ok);
	else
		print_text(&rep);
	fflush(stdout);
	return ok ? 0 : ml_err_set(e, -EIO, "diagnose failed: one or more checks failed");
}
