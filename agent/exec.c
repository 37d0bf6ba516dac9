/* agent/exec.c - one exec per stream: spawn it, carry its output under flow control, feed its
 * stdin, and report its exit.
 *
 * Life of an exec: PT_EXEC -> fork (child.c) -> the status pipe says "execve happened" (EOF) or
 * carries an error line (PT_ERROR, stream over) -> PT_STARTED -> output flows, at most
 * PROTO_WINDOW unacknowledged bytes per stream -> SIGCHLD -> the pipes are drained of what was
 * in them when the leader died -> empty PT_STDOUT/PT_STDERR (EOF) -> PT_EXIT.
 *
 * After PT_EXIT, background processes the exec left behind keep running; if they still hold
 * the output pipes, the agent keeps reading those and throws the bytes away (so they never
 * block or get SIGPIPE), until the last writer closes them. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/cleanup.h"
#include "base/log.h"

#define CANCEL_GRACE_S 5
#define TTY_DRAIN_MAX (4u << 20) /* after exit, a PTY is read until EIO/EAGAIN or this much */
#define STDIN_MAX (2 * PROTO_WINDOW) /* host overrunning its window: drop beyond this */

enum { OUT = 0, ERR = 1 };

struct exec {
	uint32_t stream;
	pid_t pid;
	bool live;     /* stream still open: PT_EXIT not sent yet */
	bool started;  /* execve succeeded, PT_STARTED sent */
	bool exited;   /* leader reaped */
	bool tty, discard;
	int wstatus;
	uint32_t unacked; /* PT_STDOUT + PT_STDERR bytes the host has not credited yet */
	struct watch pipe[2], in, status, timer;
	struct {
		bool draining, done;
		size_t budget;
	} drain[2];
	uint8_t *inbuf;
	size_t inlen, incap;
	bool in_eof, in_closed;
};

static uint8_t chunk[PROTO_DATA_CHUNK];

static struct exec *find_live(struct server *s, uint32_t stream)
{
	for (size_t i = 0; i < s->nexecs; i++)
		if (s->execs[i]->live && s->execs[i]->stream == stream)
			return s->execs[i];
	return NULL;
}

static void exec_update(struct server *s, struct exec *x);
static void exec_maybe_finish(struct server *s, struct exec *x);
static void begin_drain(struct server *s, struct exec *x);

/* --- stdin --- */

static void stdin_drop(struct server *s, struct exec *x)
{
	if (x->inlen)
		server_send_u32(s, PT_CREDIT, x->stream, (uint32_t)x->inlen);
	x->inlen = 0;
	x->in_closed = true;
	watch_close(s, &x->in);
}

static void stdin_write(struct server *s, struct exec *x)
{
	int fd = x->tty ? x->pipe[OUT].fd : x->in.fd;
	if (fd < 0 || !x->started) {
		if (fd < 0 && x->started)
			stdin_drop(s, x);
		return;
	}
	size_t done = 0;
	while (done < x->inlen) {
		ssize_t n = write(fd, x->inbuf + done, x->inlen - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* the child closed its stdin: what is left can never be read */
			done = x->inlen;
			x->in_closed = true;
			break;
		}
		done += (size_t)n;
	}
	if (done) {
		memmove(x->inbuf, x->inbuf + done, x->inlen - done);
		x->inlen -= done;
		server_send_u32(s, PT_CREDIT, x->stream, (uint32_t)done);
	}
	if (x->inlen == 0 && (x->in_eof || x->in_closed) && !x->tty)
		watch_close(s, &x->in);
}

/* The buffer grows only as far as the host's window lets it (plus slack for a careless host). */
static bool stdin_room(struct exec *x, size_t n)
{
	if (x->inlen + n > STDIN_MAX)
		return false;
	if (x->inlen + n <= x->incap)
		return true;
	size_t ncap = x->incap ? x->incap : 4096;
	while (ncap < x->inlen + n)
		ncap *= 2;
	uint8_t *b = realloc(x->inbuf, ncap);
	if (!b)
		return false;
	x->inbuf = b;
	x->incap = ncap;
	return true;
}

void exec_stdin(struct server *s, uint32_t stream, const uint8_t *p, size_t n)
{
	struct exec *x = find_live(s, stream);
	if (!x)
		return; /* the exec ended while this was in flight */
	if (n == 0) {
		x->in_eof = true;
		if (x->tty && !x->in_closed) {
			/* a terminal has no half-close: ^D at the start of a line is its EOF */
			static const uint8_t eot = 4;
			if (write(x->pipe[OUT].fd, &eot, 1) < 0)
				ml_debug("stream %u: EOF to tty: %s", stream, strerror(errno));
		}
	} else if (x->in_closed || (x->in.fd < 0 && !x->tty) || !stdin_room(x, n)) {
		server_send_u32(s, PT_CREDIT, stream, (uint32_t)n); /* dropped, but never a stuck host */
	} else {
		memcpy(x->inbuf + x->inlen, p, n);
		x->inlen += n;
	}
	stdin_write(s, x);
	exec_update(s, x);
}

/* --- output --- */

static void out_done(struct server *s, struct exec *x, int i, bool close_it)
{
	x->drain[i].done = true;
	if (close_it)
		watch_close(s, &x->pipe[i]);
}

static void out_read(struct server *s, struct exec *x, int i)
{
	struct watch *w = &x->pipe[i];
	for (int rounds = 0; rounds < 4 && w->fd >= 0 && !x->drain[i].done; rounds++) {
		size_t want = PROTO_WINDOW - x->unacked;
		if (want > sizeof(chunk))
			want = sizeof(chunk);
		if (x->drain[i].draining && want > x->drain[i].budget)
			want = x->drain[i].budget;
		if (want == 0)
			return; /* window full: exec_update takes the fd out of the set */
		ssize_t n = read(w->fd, chunk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (x->drain[i].draining)
				out_done(s, x, i, false);
			return;
		}
		if (n <= 0) { /* EOF, or EIO from a PTY whose other side is all closed */
			out_done(s, x, i, true);
			return;
		}
		server_send(s, i == OUT ? PT_STDOUT : PT_STDERR, x->stream, chunk, (size_t)n);
		x->unacked += (uint32_t)n;
		if (x->drain[i].draining && (x->drain[i].budget -= (size_t)n) == 0)
			out_done(s, x, i, false);
	}
}

static void out_discard(struct server *s, struct watch *w)
{
	for (int rounds = 0; rounds < 4; rounds++) {
		ssize_t n = read(w->fd, chunk, sizeof(chunk));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			watch_close(s, w);
			return;
		}
	}
}

static void on_pipe(struct server *s, struct watch *w, uint32_t events)
{
	struct exec *x = w->owner;
	int i = w == &x->pipe[OUT] ? OUT : ERR;
	if (x->tty && (events & EPOLLHUP) && !(w->want & EPOLLIN))
		stdin_drop(s, x); /* terminal gone while its window is full: nobody reads input */
	if (x->tty && (events & EPOLLOUT))
		stdin_write(s, x);
	if (x->discard)
		out_discard(s, w);
	else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		out_read(s, x, i);
	exec_update(s, x);
	exec_maybe_finish(s, x);
}

static void on_stdin(struct server *s, struct watch *w, uint32_t events)
{
	struct exec *x = w->owner;
	if (events & (EPOLLERR | EPOLLHUP))
		stdin_drop(s, x);
	else
		stdin_write(s, x);
	exec_update(s, x);
}

/* Which events each fd of x is polled for now. An fd that must wait (window full, not
 * started) leaves the set entirely, since EPOLLHUP would fire even with no events asked. */
static void exec_update(struct server *s, struct exec *x)
{
	for (int i = OUT; i <= ERR; i++) {
		uint32_t ev = 0;
		bool can_read = x->started && !x->drain[i].done && x->unacked < PROTO_WINDOW;
		if (x->discard || can_read)
			ev |= EPOLLIN;
		if (i == OUT && x->tty && x->started && x->inlen > 0)
			ev |= EPOLLOUT;
		watch_set(s, &x->pipe[i], ev);
	}
	watch_set(s, &x->in, x->started && x->inlen > 0 ? EPOLLOUT : 0);
}

/* --- start --- */

static void exec_free_fds(struct server *s, struct exec *x)
{
	watch_close(s, &x->pipe[OUT]);
	watch_close(s, &x->pipe[ERR]);
	watch_close(s, &x->in);
	watch_close(s, &x->status);
	watch_close(s, &x->timer);
}

static void end_stream(struct server *s, struct exec *x)
{
	x->live = false;
	s->nlive--;
}

static void on_status(struct server *s, struct watch *w, uint32_t events)
{
	(void)events;
	struct exec *x = w->owner;
	char msg[512];
	ssize_t n = read(w->fd, msg, sizeof(msg) - 1);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	watch_close(s, w);
	if (n > 0) {
		msg[n] = '\0';
		server_send_error(s, x->stream, "%s", msg);
		end_stream(s, x);
		exec_free_fds(s, x); /* the child exits by itself; its zombie is reaped as an orphan */
		return;
	}
	x->started = true;
	server_send_u32(s, PT_STARTED, x->stream, (uint32_t)x->pid);
	if (x->exited)
		begin_drain(s, x);
	stdin_write(s, x);
	exec_update(s, x);
	exec_maybe_finish(s, x);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Parent ends (p[0] for output, p[1] for input) are nonblocking; the child keeps blocking ends. */
static int make_pipe(int p[2], bool parent_reads)
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (set_nonblock(p[parent_reads ? 0 : 1]) < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	return 0;
}

static int open_pty(const struct proto_exec *req, int *master, int *slave)
{
	int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	int unlock = 0;
	struct winsize ws = { .ws_row = req->rows ? req->rows : 24, .ws_col = req->cols ? req->cols : 80 };
	int sl = -1;
	if (ioctl(m, TIOCSPTLCK, &unlock) == 0 && ioctl(m, TIOCSWINSZ, &ws) == 0)
		sl = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sl < 0) {
		int r = -errno;
		close(m);
		return r;
	}
	*master = m;
	*slave = sl;
	return 0;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* fds: [0] out read, [1] out write, [2] err read, [3] err write, [4] in read, [5] in write,
 * [6] status read, [7] status write, [8] pty master, [9] pty slave */
static int make_fds(const struct proto_exec *req, int fds[10])
{
	for (int i = 0; i < 10; i++)
		fds[i] = -1;
	int r = make_pipe(&fds[6], true);
	if (r == 0 && (req->flags & EXF_TTY))
		return open_pty(req, &fds[8], &fds[9]);
	if (r == 0)
		r = make_pipe(&fds[0], true);
	if (r == 0)
		r = make_pipe(&fds[2], true);
	if (r == 0 && (req->flags & EXF_STDIN))
		r = make_pipe(&fds[4], false);
	return r;
}

static struct exec *exec_new(struct server *s, uint32_t stream, bool tty)
{
	if (s->nexecs == s->cap_execs) {
		size_t ncap = s->cap_execs ? s->cap_execs * 2 : 64;
		struct exec **n = realloc(s->execs, ncap * sizeof(*n));
		if (!n)
			return NULL;
		s->execs = n;
		s->cap_execs = ncap;
	}
	struct exec *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->stream = stream;
	x->tty = tty;
	x->live = true;
	struct watch *ws[] = { &x->pipe[OUT], &x->pipe[ERR], &x->in, &x->status, &x->timer };
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
		ws[i]->fd = -1;
		ws[i]->owner = x;
		ws[i]->fn = on_pipe;
	}
	x->in.fn = on_stdin;
	x->status.fn = on_status;
	s->execs[s->nexecs++] = x;
	s->nlive++;
	return x;
}

static void spawn(struct server *s, uint32_t stream, const struct proto_exec *req)
{
	int fds[10];
	int r = make_fds(req, fds);
	if (r < 0) {
		close_fds(fds, 10);
		server_send_error(s, stream, "cannot create pipes: %s", strerror(-r));
		return;
	}
	bool tty = req->flags & EXF_TTY;
	struct child_fds cf = { fds[4], fds[1], fds[3], fds[9], fds[7] };
	struct exec *x = exec_new(s, stream, tty);
	if (!x) {
		close_fds(fds, 10);
		server_send_error(s, stream, "cannot start process: out of memory");
		return;
	}
	static bool seccomp_ready;
	if (!seccomp_ready && !(req->flags & EXF_PRIVILEGED)) {
		struct ml_err e = { 0, "" };
		/* on failure each child compiles its own filter, as before: slower, not weaker */
		seccomp_ready = sandbox_prepare_seccomp(&e) == 0;
	}
	pid_t pid = fork();
	if (pid == 0)
		child_exec(req, &cf);
	if (pid < 0) {
		r = errno;
		close_fds(fds, 10);
		end_stream(s, x);
		server_send_error(s, stream, "cannot start process: %s", strerror(r));
		return;
	}
	x->pid = pid;
	x->pipe[OUT].fd = tty ? fds[8] : fds[0];
	x->pipe[ERR].fd = fds[2];
	x->in.fd = fds[5];
	x->status.fd = fds[6];
	int child_ends[] = { fds[1], fds[3], fds[4], fds[7], fds[9] };
	close_fds(child_ends, 5);
	x->drain[ERR].done = tty; /* a PTY has one output stream */
	watch_set(s, &x->status, EPOLLIN);
}

void exec_start(struct server *s, uint32_t stream, const uint8_t *p, size_t n)
{
	if (find_live(s, stream)) {
		server_send_error(s, stream, "stream %u is already in use", stream);
		return;
	}
	if (s->nlive >= PROTO_MAX_STREAMS) {
		server_send_error(s, stream, "too many concurrent execs (limit %u)", PROTO_MAX_STREAMS);
		return;
	}
	struct proto_exec req;
	int r = proto_exec_decode(p, n, &req);
	if (r < 0) {
		server_send_error(s, stream, "malformed exec request: %s", strerror(-r));
		return;
	}
	ml_info("stream %u: exec %s", stream, req.argv[0]);
	spawn(s, stream, &req);
	proto_exec_free(&req);
}

/* --- exit --- */

static void begin_drain(struct server *s, struct exec *x)
{
	for (int i = OUT; i <= ERR; i++) {
		if (x->pipe[i].fd < 0 || x->drain[i].done)
			continue;
		/* A pipe holds exactly what was written before the leader died; reading only that
		 * much stops a background writer from holding the exit back forever. */
		int avail = 0;
		if (x->tty)
			x->drain[i].budget = TTY_DRAIN_MAX;
		else
			x->drain[i].budget = ioctl(x->pipe[i].fd, FIONREAD, &avail) == 0 ? (size_t)avail : 0;
		x->drain[i].draining = true;
		if (x->drain[i].budget == 0 && !x->tty)
			x->drain[i].done = true;
		else
			out_read(s, x, i);
	}
}

static void exec_maybe_finish(struct server *s, struct exec *x)
{
	if (!x->live || !x->started || !x->exited || !x->drain[OUT].done || !x->drain[ERR].done)
		return;
	server_send(s, PT_STDOUT, x->stream, NULL, 0);
	if (!x->tty)
		server_send(s, PT_STDERR, x->stream, NULL, 0);
	uint8_t st[8];
	int code = WIFSIGNALED(x->wstatus) ? 128 + WTERMSIG(x->wstatus) : WEXITSTATUS(x->wstatus);
	put_u32(st, (uint32_t)code);
	put_u32(st + 4, WIFSIGNALED(x->wstatus) ? (uint32_t)WTERMSIG(x->wstatus) : 0);
	server_send(s, PT_EXIT, x->stream, st, sizeof(st));
	ml_info("stream %u: exit %d", x->stream, code);
	end_stream(s, x);
	watch_close(s, &x->in);
	watch_close(s, &x->timer);
	if (x->tty)
		watch_close(s, &x->pipe[OUT]); /* the session is over; its members got SIGHUP */
	x->discard = true;
	exec_update(s, x);
}

void exec_reaped(struct server *s, pid_t pid, int wstatus)
{
	for (size_t i = 0; i < s->nexecs; i++) {
		struct exec *x = s->execs[i];
		if (x->pid != pid || x->exited)
			continue;
		x->exited = true;
		x->wstatus = wstatus;
		if (x->started && x->live)
			begin_drain(s, x);
		exec_update(s, x);
		exec_maybe_finish(s, x);
		return;
	}
}

void exec_gc(struct server *s)
{
	size_t j = 0;
	for (size_t i = 0; i < s->nexecs; i++) {
		struct exec *x = s->execs[i];
		bool idle = !x->live && x->pipe[OUT].fd < 0 && x->pipe[ERR].fd < 0 && x->in.fd < 0 &&
			    x->status.fd < 0 && x->timer.fd < 0;
		if (idle) {
			free(x->inbuf);
			free(x);
		} else {
			s->execs[j++] = x;
		}
	}
	s->nexecs = j;
}

/* --- control: credit, signal, cancel, resize --- */

static bool payload_u32(const uint8_t *p, size_t n, uint32_t *v)
{
	struct cursor c = { { p, n }, 0, 0 };
	*v = cur_u32(&c);
	return !c.bad && n == 4;
}

void exec_credit(struct server *s, uint32_t stream, const uint8_t *p, size_t n)
{
	struct exec *x = find_live(s, stream);
	uint32_t v;
	if (!x || !payload_u32(p, n, &v))
		return;
	x->unacked = v > x->unacked ? 0 : x->unacked - v;
	exec_update(s, x);
}

static void signal_group(struct exec *x, int sig)
{
	/* only while the leader is unreaped: after that its pid (= pgid) may be reused */
	if (x->pid > 0 && !x->exited && kill(-x->pid, sig) < 0 && errno == ESRCH)
		kill(x->pid, sig);
}

void exec_signal(struct server *s, uint32_t stream, const uint8_t *p, size_t n)
{
	struct exec *x = find_live(s, stream);
	uint32_t sig;
	if (x && payload_u32(p, n, &sig) && sig > 0 && sig < (uint32_t)NSIG)
		signal_group(x, (int)sig);
}

static void on_cancel_timer(struct server *s, struct watch *w, uint32_t events)
{
	(void)events;
	struct exec *x = w->owner;
	signal_group(x, SIGKILL);
	watch_close(s, w);
}

void exec_cancel(struct server *s, uint32_t stream)
{
	struct exec *x = find_live(s, stream);
	if (!x)
		return;
	signal_group(x, SIGTERM);
	if (x->timer.fd >= 0)
		return;
	x->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { .it_value = { CANCEL_GRACE_S, 0 } };
	if (x->timer.fd < 0 || timerfd_settime(x->timer.fd, 0, &its, NULL) < 0) {
		ml_warn("stream %u: cancel timer: %s", stream, strerror(errno));
		signal_group(x, SIGKILL);
		watch_close(s, &x->timer);
		return;
	}
	x->timer.fn = on_cancel_timer;
	watch_set(s, &x->timer, EPOLLIN);
}

void exec_resize(struct server *s, uint32_t stream, const uint8_t *p, size_t n)
{
	struct exec *x = find_live(s, stream);
	struct cursor c = { { p, n }, 0, 0 };
	struct winsize ws = { .ws_row = cur_u16(&c), .ws_col = cur_u16(&c) };
	if (x && x->tty && !c.bad && n == 4 && x->pipe[OUT].fd >= 0)
		ioctl(x->pipe[OUT].fd, TIOCSWINSZ, &ws);
}
