/* cli/exec.c - `matchlock exec [-i] [-t] [-w dir] [-u user] <id> [--] <command...>`: a command
 * in a running VM, through its control socket. Buffered by default (stdout, then stderr, then
 * the command's exit status); -i streams stdin/stdout/stderr (exec_pipe); -it gives a real
 * terminal (exec_tty, raw mode, resizes). If this process is interrupted or dies, its
 * connection closes and the VM's owner kills the command's process group. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "base/b64.h"
#include "base/proc.h"
#include "base/cleanup.h"
#include "base/io.h"
#include "base/loop.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/ctlclient.h"
#include "rpc/jsonrpc.h"

struct xs {
	struct ml_loop *loop;
	struct rpc_conn *conn;
	bool tty, pipe, done, ready, stdin_eof;
	int sig_fd;
	int code;
	struct ml_err *e;
	const char *mode;     /* "exec_pipe" / "exec_tty" */
};

static void write_b64(int fd, const char *s)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n = 0;
	if (s && rpc_b64_decode(s, strlen(s), &d, &n) == 0)
		ml_write_all(fd, d, n);
}

static void finish(struct xs *x, int code)
{
	x->done = true;
	x->code = code;
	ml_loop_stop(x->loop);
}

/* ---- stdin -> the guest ---- */
static void on_stdin(struct ml_loop *l, int fd, short rev, void *arg);
static void watch_stdin(struct xs *x);

/* A stdin line left: read more if we had stopped because too much was queued. */
static void on_input_written(void *arg, bool sent)
{
	struct xs *x = arg;
	if (sent && x->ready && !x->stdin_eof && !x->done)
		watch_stdin(x);
}

static void send_input(struct xs *x, const uint8_t *d, size_t n)
{
	char method[48];
	snprintf(method, sizeof(method), "%s.%s", x->mode, n ? "stdin" : "stdin_eof");
	json_t *p = json_pack("{s:i}", "id", 1);
	if (n) {
		_cleanup_free_ char *b = ml_b64_encode(d, n);
		json_object_set_new(p, "data", json_string(b ? b : ""));
	}
	rpc_conn_send(x->conn, rpc_msg_notify(method, p), on_input_written, x);
}

static void watch_stdin(struct xs *x)
{
	/* back-pressure: read no more while the socket holds a lot we have not sent */
	short ev = x->stdin_eof || rpc_conn_queued(x->conn) > (1u << 20) ? 0 : POLLIN;
	ml_loop_watch(x->loop, STDIN_FILENO, ev, on_stdin, x);
}

static void on_stdin(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)rev;
	struct xs *x = arg;
	uint8_t buf[32 * 1024];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		x->stdin_eof = true;
		ml_loop_unwatch(x->loop, fd);
		send_input(x, NULL, 0);
		return;
	}
	send_input(x, buf, (size_t)n);
	watch_stdin(x);
}

static void resize(struct xs *x)
{
	struct winsize ws;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_row)
		return;
	json_t *p = json_pack("{s:i, s:i, s:i}", "id", 1, "rows", ws.ws_row, "cols", ws.ws_col);
	rpc_conn_send(x->conn, rpc_msg_notify("exec_tty.resize", p), NULL, NULL);
}

/* ---- the guest -> us ---- */
static void on_line(void *arg, struct rpc_conn *c, char *line, size_t len)
{
	(void)c;
	struct xs *x = arg;
	json_t *m = json_loadb(line, len, 0, NULL);
	const char *method = json_string_value(json_object_get(m, "method"));
	json_t *params = json_object_get(m, "params");
	if (method && strstr(method, ".ready")) {
		x->ready = true;
		if (x->tty)
			resize(x);
		watch_stdin(x);
	} else if (method && (strstr(method, ".stdout") || strstr(method, ".stderr"))) {
		write_b64(strstr(method, ".stderr") ? STDERR_FILENO : STDOUT_FILENO,
			  json_string_value(json_object_get(params, "data")));
		if (x->ready && !x->stdin_eof)
			watch_stdin(x);
	} else if (json_object_get(m, "error")) {
		ml_err_set(x->e, -EIO, "%s failed: %s", x->tty ? "interactive exec" : "pipe exec",
			   json_string_value(json_object_get(json_object_get(m, "error"), "message")) ?: "failed");
		finish(x, -1);
	} else if (json_object_get(m, "result")) {
		finish(x, (int)json_integer_value(json_object_get(json_object_get(m, "result"), "exit_code")));
	}
	json_decref(m);
}

static void on_closed(void *arg, struct rpc_conn *c)
{
	(void)c;
	struct xs *x = arg;
	if (!x->done) {
		ml_err_set(x->e, -EPIPE, "%s failed: the VM's owner closed the connection",
			   x->tty ? "interactive exec" : "pipe exec");
		finish(x, -1);
	}
}

static const struct rpc_conn_ops conn_ops = { .line = on_line, .closed = on_closed };

static void on_signal(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)rev;
	struct xs *x = arg;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH && x->tty)
			resize(x);
		else if (si.ssi_signo != SIGWINCH)
			finish(x, 128 + (int)si.ssi_signo); /* closing the socket kills the command */
	}
}

static int interactive(int fd, const char *method, json_t *params, bool tty, struct ml_err *e)
{
	struct xs x = { .tty = tty, .pipe = !tty, .e = e, .mode = method };
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH };
	x.sig_fd = ml_signalfd(sigs, sizeof(sigs) / sizeof(sigs[0]));
	if (ml_loop_new(&x.loop) < 0 || x.sig_fd < 0 ||
	    rpc_conn_new(x.loop, fd, fd, RPC_MAX_LINE, &conn_ops, &x, &x.conn, e) < 0) {
		json_decref(params);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	struct termios saved;
	bool raw = false;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		struct termios t = saved;
		cfmakeraw(&t);
		raw = tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
	}
	ml_loop_watch(x.loop, x.sig_fd, POLLIN, on_signal, &x);
	rpc_conn_send(x.conn, json_pack("{s:s, s:s, s:o, s:i}", "jsonrpc", "2.0", "method", method, "params", params,
					"id", 1), NULL, NULL);
	while (!x.done)
		ml_loop_run(x.loop);
	if (raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
	rpc_conn_free(x.conn);
	ml_loop_unwatch(x.loop, STDIN_FILENO);
	ml_loop_free(x.loop);
	close(x.sig_fd);
	return x.code;
}

static int buffered(int fd, json_t *params, struct ml_err *e)
{
	json_t *res = NULL;
	/* SIGINT/SIGTERM end this process; the server sees the connection go and kills the
	 * command's process group */
	ml_signals_unignore();
	if (ctlclient_call(fd, "exec", params, &res, e) < 0)
		return ml_err_wrap(e, "exec failed");
	write_b64(STDOUT_FILENO, json_string_value(json_object_get(res, "stdout")));
	write_b64(STDERR_FILENO, json_string_value(json_object_get(res, "stderr")));
	int code = (int)json_integer_value(json_object_get(res, "exit_code"));
	json_decref(res);
	return code;
}

int cmd_exec(int argc, char **argv, struct ml_err *e)
{
	bool tty = false, inter = false;
	char *wd = NULL, *user = NULL;
	struct flag t[] = {
		{ "tty", 't', FLAG_BOOL, &tty, "Allocate a pseudo-TTY (with -i)", NULL, false, false },
		{ "interactive", 'i', FLAG_BOOL, &inter, "Attach stdin", NULL, false, false },
		{ "workdir", 'w', FLAG_STRING, &wd, "Working directory in the guest", NULL, false, false },
		{ "user", 'u', FLAG_STRING, &user, "uid, uid:gid or user name", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Run a command in a running sandbox.\n\nUsage:\n"
			       "  matchlock exec [flags] <id> [--] <command...>\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	bool it = tty && inter;
	if (pos.n < 1)
		return ml_err_set(e, -EINVAL, "requires at least 1 arg(s), only received 0");
	if (pos.n < 2 && !it)
		return strv_clear(&pos), ml_err_set(e, -EINVAL, "command required (or use -it for interactive mode)");
	if (it && !isatty(STDIN_FILENO))
		return strv_clear(&pos), ml_err_set(e, -EINVAL, "-it requires a TTY");
	_cleanup_free_ char *cmd = pos.n > 1 ? shell_join(pos.v + 1, pos.n - 1) : strdup("sh");
	_cleanup_close_ int fd = cmd ? ctlclient_connect(pos.v[0], e) : -ENOMEM;
	strv_clear(&pos);
	if (fd < 0)
		return fd;
	json_t *params = json_pack("{s:s}", "command", cmd);
	if (wd && *wd)
		json_object_set_new(params, "working_dir", json_string(wd));
	if (user && *user)
		json_object_set_new(params, "user", json_string(user));
	if (!inter)
		return buffered(fd, params, e);
	r = interactive(steal_fd(&fd), it ? "exec_tty" : "exec_pipe", params, it, e);
	return r;
}
