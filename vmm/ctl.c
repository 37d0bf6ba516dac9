/* vmm/ctl.c - host end of the control protocol (agent/PROTOCOL.md).
 *
 * The guest is hostile: every frame goes through proto_reader_next (length and type checked),
 * data frames are counted against the per-stream window so a guest cannot make us buffer more
 * than PROTO_WINDOW per exec, and anything malformed ends the channel (never the process). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/text.h"
#include "vmm/vmm.h"

#define READ_BUDGET (512u << 10) /* bytes read per readable event: keeps the loop fair */

struct ctl_stream {
	uint32_t id;
	const struct ctl_exec_ops *ops;
	void *arg;
	uint32_t stdin_unacked; /* stdin bytes sent, not yet credited by the guest */
	uint32_t out_unacked;   /* output bytes received, not yet consumed by our caller */
	bool stdin_done;
};

struct ctl {
	int fd;
	const struct ctl_ops *ops;
	void *arg;
	struct proto_reader rd;
	struct proto_msg out;
	size_t out_off;
	struct ctl_stream *st;
	size_t nst, capst;
	uint32_t next_id;
	bool dead;
};

int ctl_new(int fd, const struct ctl_ops *ops, void *arg, struct ctl **out)
{
	struct ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->ops = ops;
	c->arg = arg;
	c->next_id = 1;
	proto_reader_init(&c->rd);
	proto_msg_init(&c->out);
	*out = c;
	return 0;
}

void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	proto_reader_free(&c->rd);
	proto_msg_free(&c->out);
	free(c->st);
	free(c);
}

static struct ctl_stream *stream_find(struct ctl *c, uint32_t id)
{
	for (size_t i = 0; i < c->nst; i++)
		if (c->st[i].id == id)
			return &c->st[i];
	return NULL;
}

static void stream_drop(struct ctl *c, uint32_t id)
{
	struct ctl_stream *s = stream_find(c, id);
	if (s)
		*s = c->st[--c->nst];
}

bool ctl_wants_write(const struct ctl *c) { return !c->dead && c->out_off < c->out.len; }

int ctl_on_writable(struct ctl *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -errno;
		c->out_off += (size_t)n;
	}
	c->out.len = 0;
	c->out_off = 0;
	return 0;
}

/* Queue one frame and try to send it at once: most frames leave without a poll round trip. */
static int send_frame(struct ctl *c, uint16_t type, uint32_t stream, const void *p, size_t n)
{
	if (c->dead)
		return -EPIPE;
	int r = proto_msg_frame(&c->out, type, stream, p, n);
	return r < 0 ? r : ctl_on_writable(c);
}

static void fail_all(struct ctl *c, const char *msg)
{
	while (c->nst > 0) {
		struct ctl_stream s = c->st[--c->nst];
		if (s.ops->failed)
			s.ops->failed(s.arg, msg);
	}
}

static int channel_broken(struct ctl *c, const char *msg)
{
	if (c->dead)
		return -EPIPE;
	c->dead = true;
	ml_warn("guest control channel: %s", msg);
	fail_all(c, msg);
	if (c->ops->closed)
		c->ops->closed(c->arg, msg);
	return -EPIPE;
}

/* A guest text payload as one bounded line that is safe on a terminal: every guest string
 * the host passes on (error lines, log lines, the hello) is cleaned here, where it enters. */
static void payload_text(const struct proto_frame *f, char *out, size_t n)
{
	ml_text_clean(out, n, f->payload, f->len, ML_TEXT_LINE);
}

static int on_session_frame(struct ctl *c, const struct proto_frame *f)
{
	char text[1024];
	struct cursor cur = { { f->payload, f->len }, 0, 0 };
	switch (f->type) {
	case PT_HELLO: {
		uint32_t ver = cur_u32(&cur);
		if (cur.bad)
			return channel_broken(c, "malformed HELLO");
		struct proto_frame rest = *f;
		rest.payload += 4;
		rest.len -= 4;
		payload_text(&rest, text, sizeof(text));
		if (c->ops->hello)
			c->ops->hello(c->arg, ver, text);
		return 0;
	}
	case PT_READY:
		if (c->ops->ready)
			c->ops->ready(c->arg);
		return 0;
	case PT_ERROR:
		payload_text(f, text, sizeof(text));
		if (c->ops->config_failed)
			c->ops->config_failed(c->arg, text);
		return 0;
	case PT_LOG:
		payload_text(f, text, sizeof(text));
		if (c->ops->log)
			c->ops->log(c->arg, text);
		return 0;
	case PT_PONG:
		if (c->ops->pong)
			c->ops->pong(c->arg, f->payload, f->len);
		return 0;
	default:
		return channel_broken(c, "unexpected frame on stream 0");
	}
}

static int on_output(struct ctl *c, struct ctl_stream *s, const struct proto_frame *f)
{
	if (f->len > PROTO_WINDOW - s->out_unacked)
		return channel_broken(c, "guest overran its output window");
	s->out_unacked += f->len;
	s->ops->output(s->arg, f->type == PT_STDOUT ? 1 : 2, f->payload, f->len);
	return 0;
}

static int on_exit_frame(struct ctl *c, struct ctl_stream *s, const struct proto_frame *f)
{
	struct cursor cur = { { f->payload, f->len }, 0, 0 };
	int32_t code = (int32_t)cur_u32(&cur);
	uint32_t sig = cur_u32(&cur);
	if (cur.bad || sig > 64)
		return channel_broken(c, "malformed EXIT");
	struct ctl_stream copy = *s;
	stream_drop(c, s->id);
	copy.ops->exited(copy.arg, code, (int)sig);
	return 0;
}

static int on_stream_frame(struct ctl *c, const struct proto_frame *f)
{
	struct ctl_stream *s = stream_find(c, f->stream);
	if (!s)
		return 0; /* late frames of a finished exec */
	struct cursor cur = { { f->payload, f->len }, 0, 0 };
	switch (f->type) {
	case PT_STARTED: {
		uint32_t pid = cur_u32(&cur);
		if (cur.bad)
			return channel_broken(c, "malformed STARTED");
		if (s->ops->started)
			s->ops->started(s->arg, pid);
		return 0;
	}
	case PT_STDOUT:
	case PT_STDERR:
		return on_output(c, s, f);
	case PT_EXIT:
		return on_exit_frame(c, s, f);
	case PT_ERROR: {
		char text[1024];
		payload_text(f, text, sizeof(text));
		struct ctl_stream copy = *s;
		stream_drop(c, s->id);
		if (copy.ops->failed)
			copy.ops->failed(copy.arg, text);
		return 0;
	}
	case PT_CREDIT: {
		uint32_t n = cur_u32(&cur);
		if (cur.bad || n > s->stdin_unacked)
			return channel_broken(c, "malformed CREDIT");
		s->stdin_unacked -= n;
		if (s->ops->stdin_ready)
			s->ops->stdin_ready(s->arg);
		return 0;
	}
	default:
		return channel_broken(c, "unexpected frame type from guest");
	}
}

static int dispatch(struct ctl *c)
{
	struct proto_frame f;
	int r;
	while (!c->dead && (r = proto_reader_next(&c->rd, &f)) == 1) {
		r = f.stream == 0 ? on_session_frame(c, &f) : on_stream_frame(c, &f);
		if (r < 0)
			return r;
	}
	if (c->dead)
		return -EPIPE;
	return r < 0 ? channel_broken(c, "malformed or oversized frame from guest") : 0;
}

int ctl_on_readable(struct ctl *c)
{
	size_t total = 0;
	while (!c->dead && total < READ_BUDGET) {
		size_t room;
		uint8_t *p = proto_reader_space(&c->rd, &room);
		if (!p)
			return channel_broken(c, "out of memory");
		ssize_t n = read(c->fd, p, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return channel_broken(c, n == 0 ? "guest closed the channel" : strerror(errno));
		proto_reader_commit(&c->rd, (size_t)n);
		total += (size_t)n;
		int r = dispatch(c);
		if (r < 0)
			return r;
	}
	return c->dead ? -EPIPE : 0;
}

int ctl_configure(struct ctl *c, const struct proto_config *cfg)
{
	int r = proto_config_encode(&c->out, cfg);
	return r < 0 ? r : ctl_on_writable(c);
}

int ctl_ping(struct ctl *c, const void *data, size_t len) { return send_frame(c, PT_PING, 0, data, len); }
int ctl_shutdown(struct ctl *c) { return send_frame(c, PT_SHUTDOWN, 0, NULL, 0); }

int ctl_exec(struct ctl *c, const struct proto_exec *x, const struct ctl_exec_ops *ops, void *arg,
	     uint32_t *stream)
{
	if (c->dead)
		return -EPIPE;
	if (c->nst >= PROTO_MAX_STREAMS)
		return -EAGAIN;
	if (c->nst == c->capst) {
		size_t n = c->capst ? c->capst * 2 : 8;
		struct ctl_stream *ns = realloc(c->st, n * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		c->st = ns;
		c->capst = n;
	}
	uint32_t id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	int r = proto_exec_encode(&c->out, id, x);
	if (r < 0)
		return r;
	c->st[c->nst++] = (struct ctl_stream){ .id = id, .ops = ops, .arg = arg };
	*stream = id;
	return ctl_on_writable(c);
}

ssize_t ctl_exec_stdin(struct ctl *c, uint32_t stream, const void *data, size_t len)
{
	struct ctl_stream *s = stream_find(c, stream);
	if (!s || s->stdin_done)
		return -ENOENT;
	if (len == 0) {
		s->stdin_done = true;
		int r = send_frame(c, PT_STDIN, stream, NULL, 0);
		return r < 0 ? r : 0;
	}
	size_t room = PROTO_WINDOW - s->stdin_unacked;
	size_t take = len < room ? len : room;
	for (size_t off = 0; off < take;) {
		size_t n = take - off < PROTO_DATA_CHUNK ? take - off : PROTO_DATA_CHUNK;
		int r = proto_msg_frame(&c->out, PT_STDIN, stream, (const uint8_t *)data + off, n);
		if (r < 0)
			return r;
		off += n;
	}
	s->stdin_unacked += (uint32_t)take;
	int r = ctl_on_writable(c);
	return r < 0 ? r : (ssize_t)take;
}

int ctl_exec_consumed(struct ctl *c, uint32_t stream, size_t n)
{
	struct ctl_stream *s = stream_find(c, stream);
	if (!s || n == 0)
		return 0;
	if (n > s->out_unacked)
		n = s->out_unacked;
	s->out_unacked -= (uint32_t)n;
	uint8_t b[4];
	put_u32(b, (uint32_t)n);
	return send_frame(c, PT_CREDIT, stream, b, 4);
}

int ctl_exec_resize(struct ctl *c, uint32_t stream, uint16_t rows, uint16_t cols)
{
	uint8_t b[4];
	put_u16(b, rows);
	put_u16(b + 2, cols);
	return stream_find(c, stream) ? send_frame(c, PT_RESIZE, stream, b, 4) : -ENOENT;
}

int ctl_exec_signal(struct ctl *c, uint32_t stream, int sig)
{
	uint8_t b[4];
	put_u32(b, (uint32_t)sig);
	return stream_find(c, stream) ? send_frame(c, PT_SIGNAL, stream, b, 4) : -ENOENT;
}

int ctl_exec_cancel(struct ctl *c, uint32_t stream)
{
	return stream_find(c, stream) ? send_frame(c, PT_CANCEL, stream, NULL, 0) : -ENOENT;
}
