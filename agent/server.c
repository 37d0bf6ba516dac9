/* agent/server.c - the agent's single-threaded epoll loop: the control channel (frames in, an
 * output queue written without ever blocking), SIGCHLD through a signalfd, and dispatch of
 * every frame to config or exec handling.
 *
 * virtio-serial quirk: while no host end is connected, read() returns 0 and poll reports
 * EPOLLHUP continuously. EOF is therefore "try again later": the port leaves the epoll set for
 * 10 ms (a timerfd brings it back) instead of spinning or giving up. */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"

#define BACKOFF_NS (10 * 1000 * 1000)
#define OUT_COMPACT (1u << 20) /* move unsent bytes to the front once this much was sent */

void watch_set(struct server *s, struct watch *w, uint32_t events)
{
	if (w->fd < 0 || w->want == events)
		return;
	struct epoll_event ev = { .events = events, .data.ptr = w };
	int op = events == 0 ? EPOLL_CTL_DEL : w->want == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(s->epfd, op, w->fd, &ev) < 0) {
		ml_error("epoll_ctl fd %d: %s", w->fd, strerror(errno));
		return;
	}
	w->want = events;
}

void watch_close(struct server *s, struct watch *w)
{
	if (w->fd < 0)
		return;
	watch_set(s, w, 0);
	close(w->fd);
	w->fd = -1;
}

void server_send(struct server *s, uint16_t type, uint32_t stream, const void *p, size_t n)
{
	int r = proto_msg_frame(&s->out, type, stream, p, n);
	if (r < 0)
		ml_error("queue %s frame: %s", proto_type_name(type), strerror(-r));
}

void server_send_u32(struct server *s, uint16_t type, uint32_t stream, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	server_send(s, type, stream, b, sizeof(b));
}

void server_send_error(struct server *s, uint32_t stream, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ml_info("stream %u: error: %s", stream, msg);
	server_send(s, PT_ERROR, stream, msg, strlen(msg));
}

static void ctl_update(struct server *s)
{
	uint32_t ev = EPOLLIN | (s->out_off < s->out.len ? EPOLLOUT : 0);
	watch_set(s, &s->ctl, s->in_backoff ? 0 : ev);
}

static void ctl_backoff(struct server *s)
{
	struct itimerspec its = { .it_value = { 0, BACKOFF_NS } };
	s->in_backoff = true;
	timerfd_settime(s->backoff.fd, 0, &its, NULL);
	ctl_update(s);
}

static void out_flush(struct server *s)
{
	while (s->out_off < s->out.len) {
		ssize_t n = write(s->ctl.fd, s->out.data + s->out_off, s->out.len - s->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EAGAIN (host slow or not connected): EPOLLOUT tells us when */
		s->out_off += (size_t)n;
	}
	if (s->out_off == s->out.len) {
		s->out.len = s->out_off = 0;
	} else if (s->out_off >= OUT_COMPACT) {
		memmove(s->out.data, s->out.data + s->out_off, s->out.len - s->out_off);
		s->out.len -= s->out_off;
		s->out_off = 0;
	}
	ctl_update(s);
}

static void do_shutdown(struct server *s)
{
	(void)s;
	boot_poweroff("shutdown requested by host");
}

static void on_config(struct server *s, const struct proto_frame *f)
{
	if (s->cfg_state != CFG_STATE_WAIT) {
		server_send_error(s, 0, "config was already applied");
		return;
	}
	struct proto_config c;
	struct ml_err e = { 0, "" };
	int r = proto_config_decode(f->payload, f->len, &c);
	if (r < 0) {
		s->cfg_state = CFG_STATE_FAILED;
		server_send_error(s, 0, "malformed config: %s", strerror(-r));
		return;
	}
	r = config_apply(&c, &e);
	proto_config_free(&c);
	if (r < 0) {
		s->cfg_state = CFG_STATE_FAILED;
		ml_error("config: %s", e.msg);
		server_send_error(s, 0, "%s", e.msg);
		return;
	}
	s->cfg_state = CFG_STATE_OK;
	server_send(s, PT_READY, 0, NULL, 0);
}

static void on_exec(struct server *s, const struct proto_frame *f)
{
	if (s->cfg_state != CFG_STATE_OK)
		server_send_error(s, f->stream, "guest is not configured");
	else if (f->stream == 0)
		server_send_error(s, 0, "exec on stream 0");
	else
		exec_start(s, f->stream, f->payload, f->len);
}

static void dispatch(struct server *s, const struct proto_frame *f)
{
	ml_debug("frame %s stream %u len %u", proto_type_name(f->type), f->stream, f->len);
	switch (f->type) {
	case PT_CONFIG: on_config(s, f); break;
	case PT_EXEC: on_exec(s, f); break;
	case PT_STDIN: exec_stdin(s, f->stream, f->payload, f->len); break;
	case PT_CREDIT: exec_credit(s, f->stream, f->payload, f->len); break;
	case PT_SIGNAL: exec_signal(s, f->stream, f->payload, f->len); break;
	case PT_CANCEL: exec_cancel(s, f->stream); break;
	case PT_RESIZE: exec_resize(s, f->stream, f->payload, f->len); break;
	case PT_PING: server_send(s, PT_PONG, f->stream, f->payload, f->len); break;
	case PT_SHUTDOWN: do_shutdown(s); break;
	default: ml_warn("ignoring %s frame from host", proto_type_name(f->type)); break;
	}
}

static void ctl_read(struct server *s)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		size_t room;
		uint8_t *p = proto_reader_space(&s->rd, &room);
		if (!p) {
			ml_error("control channel: out of memory");
			return;
		}
		ssize_t n = read(s->ctl.fd, p, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (n < 0)
				ml_warn("control channel read: %s", strerror(errno));
			ctl_backoff(s); /* host end not connected (yet, or any more) */
			return;
		}
		proto_reader_commit(&s->rd, (size_t)n);
		struct proto_frame f;
		int r;
		while ((r = proto_reader_next(&s->rd, &f)) == 1)
			dispatch(s, &f);
		if (r < 0)
			boot_poweroff("malformed frame on the control channel");
	}
}

static void on_ctl(struct server *s, struct watch *w, uint32_t events)
{
	(void)w;
	if (events & EPOLLOUT)
		out_flush(s);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		ctl_read(s);
}

static void on_backoff(struct server *s, struct watch *w, uint32_t events)
{
	(void)events;
	uint64_t ticks;
	if (read(w->fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
		return;
	s->in_backoff = false;
	ctl_update(s);
}

static void on_sigchld(struct server *s, struct watch *w, uint32_t events)
{
	(void)events;
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
	}
	/* signals coalesce: one SIGCHLD may stand for many children, so reap until none is left.
	 * As PID 1 this also collects every orphan re-parented to us. */
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		exec_reaped(s, pid, st);
}

static int make_fds(struct server *s)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s->backoff.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->epfd < 0 || s->sig.fd < 0 || s->backoff.fd < 0)
		return -errno;
	s->sig.fn = on_sigchld;
	s->backoff.fn = on_backoff;
	s->ctl.fn = on_ctl;
	watch_set(s, &s->sig, EPOLLIN);
	watch_set(s, &s->backoff, EPOLLIN);
	return 0;
}

static void send_hello(struct server *s)
{
	struct utsname u;
	char text[300];
	if (uname(&u) < 0)
		strcpy(u.release, "unknown");
	snprintf(text, sizeof(text), "agent %s", u.release);
	int r = proto_msg_begin(&s->out, PT_HELLO, 0);
	if (r == 0)
		r = proto_put_u32(&s->out, PROTO_VERSION);
	if (r == 0)
		r = proto_put_bytes(&s->out, text, strlen(text));
	if (r == 0)
		r = proto_msg_end(&s->out);
	if (r < 0)
		ml_error("queue HELLO: %s", strerror(-r));
}

void server_run(int ctl_fd)
{
	static struct server srv;
	struct server *s = &srv;
	memset(s, 0, sizeof(*s));
	s->ctl.fd = ctl_fd;
	proto_reader_init(&s->rd);
	proto_msg_init(&s->out);
	signal(SIGPIPE, SIG_IGN);
	if (make_fds(s) < 0)
		boot_poweroff("cannot create the event loop");
	send_hello(s);
	out_flush(s);
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(s->epfd, evs, 64, -1);
		if (n < 0 && errno != EINTR)
			boot_poweroff("epoll_wait failed");
		for (int i = 0; i < n; i++) {
			struct watch *w = evs[i].data.ptr;
			if (w->fd >= 0) /* closed earlier in this batch: stale */
				w->fn(s, w, evs[i].events);
		}
		exec_gc(s);
		out_flush(s);
	}
}
