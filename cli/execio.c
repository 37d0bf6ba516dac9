/* cli/execio.c - stdio <-> one guest exec.
 *
 * Output flow control: a chunk from the guest is credited back (ctl_exec_consumed) only once it
 * has been written to our stdout/stderr, so a slow reader of our output slows the guest process
 * instead of growing our memory. Writes go out in pieces of at most PIPE_BUF after POLLOUT, so
 * they never block the loop (a stuck reader must not stop --timeout or Ctrl-C from working). */
#include "cli/execio.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "base/proc.h"
#include "base/log.h"

struct outq {
	int fd;
	uint8_t *buf;
	size_t len, off;
	bool eof, broken;
};

struct run {
	struct ml_loop *loop;
	struct ctl *ctl;
	uint32_t stream;
	const struct execio_opts *o;
	struct outq out[3]; /* [1] stdout, [2] stderr */
	bool stdin_eof, stdin_blocked, exited;
	enum execio_end end;
	int code;
	struct ml_err *e;
	uint8_t inbuf[PROTO_DATA_CHUNK];
	size_t inlen;
};

static int sig_fd = -1;
static struct run *current;
static int read_signal(void);

int execio_signals_init(struct ml_err *e)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGWINCH, SIGHUP };
	sig_fd = ml_signalfd(sigs, sizeof(sigs) / sizeof(sigs[0]));
	return sig_fd < 0 ? ml_err_set(e, sig_fd, "signalfd: %s", strerror(-sig_fd)) : 0;
}

static void finish(struct run *r, enum execio_end end, int code)
{
	if (r->end != (enum execio_end)-1)
		return;
	r->end = end;
	r->code = code;
	ml_loop_stop(r->loop);
}

static bool all_written(const struct run *r)
{
	return r->out[1].off == r->out[1].len && r->out[2].off == r->out[2].len;
}

static void maybe_done(struct run *r)
{
	if (r->exited && all_written(r))
		finish(r, EXECIO_EXITED, r->code);
}

static void on_out_writable(struct ml_loop *l, int fd, short rev, void *arg);

static void out_flush(struct run *r, int which)
{
	struct outq *q = &r->out[which];
	while (q->off < q->len) {
		size_t n = q->len - q->off;
		if (n > PIPE_BUF)
			n = PIPE_BUF;
		ssize_t w = q->broken ? (ssize_t)n : write(q->fd, q->buf + q->off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			q->broken = true; /* e.g. `| head` closed: drop the rest, keep the guest going */
			continue;
		}
		q->off += (size_t)w;
		ctl_exec_consumed(r->ctl, r->stream, (size_t)w);
		if (q->off < q->len)
			break; /* wait for the next POLLOUT before writing more */
	}
	if (q->off == q->len) {
		q->off = q->len = 0;
		ml_loop_unwatch(r->loop, q->fd);
		maybe_done(r);
	} else {
		ml_loop_watch(r->loop, q->fd, POLLOUT, on_out_writable, r);
	}
}

static void on_out_writable(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)rev;
	struct run *r = arg;
	out_flush(r, fd == r->out[2].fd && fd != r->out[1].fd ? 2 : 1);
}

static void on_output(void *arg, int fd, const uint8_t *data, size_t len)
{
	struct run *r = arg;
	struct outq *q = &r->out[r->o->tty ? 1 : fd];
	if (len == 0) {
		q->eof = true;
		return;
	}
	ml_logger_write(r->o->log, data, len);
	uint8_t *nb = realloc(q->buf, q->len + len);
	if (!nb) {
		ctl_exec_consumed(r->ctl, r->stream, len);
		return;
	}
	q->buf = nb;
	memcpy(q->buf + q->len, data, len);
	q->len += len;
	if (q->len - q->off == len)
		out_flush(r, r->o->tty ? 1 : fd);
}

static void on_started(void *arg, uint32_t pid)
{
	(void)arg;
	ml_debug("guest process started, pid %u", pid);
}

static void on_exited(void *arg, int code, int sig)
{
	struct run *r = arg;
	ml_debug("guest process exited: code %d signal %d", code, sig);
	r->exited = true;
	r->code = code;
	maybe_done(r);
}

static void on_failed(void *arg, const char *msg)
{
	struct run *r = arg;
	ml_err_set(r->e, -EIO, "%s", msg);
	finish(r, EXECIO_FAILED, 1);
}

static void pump_stdin(struct run *r);
static void on_stdin_ready(void *arg) { pump_stdin(arg); }

static const struct ctl_exec_ops run_ops = {
	.started = on_started,
	.output = on_output,
	.exited = on_exited,
	.failed = on_failed,
	.stdin_ready = on_stdin_ready,
};

static void on_stdin(struct ml_loop *l, int fd, short rev, void *arg);

/* Sends what we hold; reads more only once it is all out (the window bounds what we hold). */
static void pump_stdin(struct run *r)
{
	if (r->stdin_eof || r->end != (enum execio_end)-1)
		return;
	if (r->inlen > 0) {
		ssize_t n = ctl_exec_stdin(r->ctl, r->stream, r->inbuf, r->inlen);
		if (n < 0)
			return;
		memmove(r->inbuf, r->inbuf + n, r->inlen - (size_t)n);
		r->inlen -= (size_t)n;
	}
	short ev = r->inlen == 0 ? POLLIN : 0;
	ml_loop_watch(r->loop, STDIN_FILENO, ev, on_stdin, r);
}

static void on_stdin(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)rev;
	struct run *r = arg;
	ssize_t n = read(fd, r->inbuf, sizeof(r->inbuf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		r->stdin_eof = true;
		ml_loop_unwatch(l, fd);
		ctl_exec_stdin(r->ctl, r->stream, NULL, 0);
		return;
	}
	r->inlen = (size_t)n;
	pump_stdin(r);
}

static void send_winsize(struct run *r)
{
	struct winsize ws;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
		ctl_exec_resize(r->ctl, r->stream, ws.ws_row, ws.ws_col);
}

int execio_signal_fd(void) { return sig_fd; }
int execio_read_signal(void) { return read_signal(); }

static int read_signal(void)
{
	struct signalfd_siginfo si;
	ssize_t n = read(sig_fd, &si, sizeof(si));
	return n == (ssize_t)sizeof(si) ? (int)si.ssi_signo : 0;
}

static void on_signal(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)fd;
	(void)rev;
	struct run *r = arg;
	int sig;
	while ((sig = read_signal()) > 0) {
		if (sig == SIGWINCH && r->o->tty)
			send_winsize(r);
		else if (sig != SIGWINCH)
			finish(r, EXECIO_SIGNALED, 128 + sig);
	}
}

static void on_timeout(struct ml_loop *l, void *arg)
{
	(void)l;
	finish(arg, EXECIO_TIMEOUT, 1);
}

void execio_vm_died(const char *msg)
{
	if (!current)
		return;
	ml_err_set(current->e, -EIO, "the sandbox died: %s", msg);
	finish(current, EXECIO_VM_DIED, 1);
}

int execio_run(struct ml_loop *loop, struct ctl *ctl, struct proto_exec *x,
	       const struct execio_opts *o, int *code, struct ml_err *e)
{
	struct run *r = calloc(1, sizeof(*r));
	if (!r)
		return ml_err_set(e, -ENOMEM, "out of memory");
	*r = (struct run){ .loop = loop, .ctl = ctl, .o = o, .e = e, .end = (enum execio_end)-1 };
	r->out[1].fd = STDOUT_FILENO;
	r->out[2].fd = STDERR_FILENO;
	struct termios saved;
	bool raw = false;
	if (o->tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		struct termios t = saved;
		cfmakeraw(&t);
		raw = tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
	}
	current = r;
	ml_loop_watch(loop, sig_fd, POLLIN, on_signal, r);
	int timer = o->timeout_s > 0 ? ml_loop_timer(loop, o->timeout_s * 1000, on_timeout, r) : 0;
	int rc = ctl_exec(ctl, x, &run_ops, r, &r->stream);
	if (rc < 0) {
		ml_err_set(e, rc, "sending the command to the guest failed: %s", strerror(-rc));
		r->end = EXECIO_FAILED;
	} else {
		if (o->stdin_open)
			pump_stdin(r);
		ml_loop_run(loop);
	}
	if (timer)
		ml_loop_cancel(loop, timer);
	/* Timeout, signal, a dead VM: the stream may still be open, and r is freed below. */
	if (rc >= 0)
		ctl_exec_release(ctl, r->stream);
	ml_loop_unwatch(loop, sig_fd);
	ml_loop_unwatch(loop, STDIN_FILENO);
	ml_loop_unwatch(loop, STDOUT_FILENO);
	ml_loop_unwatch(loop, STDERR_FILENO);
	if (raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
	current = NULL;
	*code = r->code;
	int end = (int)r->end;
	free(r->out[1].buf);
	free(r->out[2].buf);
	free(r);
	return end;
}

static void on_wait_signal(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)fd;
	(void)rev;
	int sig, *got = arg;
	while ((sig = read_signal()) > 0)
		if (sig != SIGWINCH) {
			*got = sig;
			ml_loop_stop(l);
		}
}

int execio_wait_signal(struct ml_loop *loop)
{
	int got = 0;
	ml_loop_watch(loop, sig_fd, POLLIN, on_wait_signal, &got);
	while (!got)
		ml_loop_run(loop);
	ml_loop_unwatch(loop, sig_fd);
	return got;
}
