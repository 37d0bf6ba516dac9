/* vmm/ctl.c - host end of the control protocol (agent/PROTOCOL.md).
 *
 * The guest is hostile: every frame goes through proto_reader_next (length and type checked),
 * data frames are counted against the per-stream window so a guest cannot make us buffer more
 * than PROTO_WINDOW per exec, and anything malformed ends the channel (never the process).
 *
 * Nothing the guest sends may grow what we queue for it without bound, even when it never
 * reads: HELLO, READY and ERROR on stream 0 count only in their boot state (else they are
 * ignored and counted), so a replayed HELLO is not answered with another CONFIG; CREDITs are
 * owed per stream and framed only while the send queue is short, so a flood of 1-byte STDOUT
 * frames adds to one number per stream instead of one frame per chunk (a guest that then
 * sends past the credits it was given overruns its window and loses the channel); and the
 * queue is bounded in bytes (CTL_QUEUE_MAX): a frame that would pass it is refused, and past
 * half of it we stop reading the guest until it drains. */
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
#define CREDIT_BELOW (64u << 10) /* owed CREDITs are framed only while less than this is queued */
#define COMPACT_AT (64u << 10)   /* move the unsent bytes to the front once this much was sent */

enum ctl_boot { BOOT_WAIT_HELLO, BOOT_WAIT_CONFIG, BOOT_WAIT_READY, BOOT_UP, BOOT_FAILED };

struct ctl_stream {
	uint32_t id;
	const struct ctl_exec_ops *ops;
	void *arg;
	uint32_t stdin_unacked; /* stdin bytes sent, not yet credited by the guest */
	uint32_t out_unacked;   /* output bytes received, not yet consumed by our caller */
	uint32_t credit_owed;   /* consumed output bytes not yet framed as a CREDIT */
	bool stdin_done;
	bool stdin_waits;       /* stdin was cut short by the queue bound: tell it when it drains */
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
	enum ctl_boot boot;
	uint64_t ignored;       /* guest frames ignored as out of turn */
	bool credit_due;        /* some stream owes a CREDIT */
	bool stdin_waits;       /* some stream's stdin waits for the queue to drain */
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
	if (c->ignored)
		ml_info("guest control channel: %llu out-of-turn frames ignored", (unsigned long long)c->ignored);
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

static int channel_broken(struct ctl *c, const char *msg);

size_t ctl_queued_bytes(const struct ctl *c) { return c->out.len - c->out_off; }
uint64_t ctl_ignored_frames(const struct ctl *c) { return c->ignored; }

bool ctl_wants_write(const struct ctl *c)
{
	return !c->dead && (ctl_queued_bytes(c) > 0 || c->credit_due);
}

bool ctl_wants_read(const struct ctl *c) { return !c->dead && ctl_queued_bytes(c) < CTL_QUEUE_MAX / 2; }

/* Writes what the socket takes now; keeps the unsent bytes at the front of the buffer. */
static int out_write(struct ctl *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return -errno;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out.len) {
		c->out.len = c->out_off = 0;
	} else if (c->out_off >= COMPACT_AT) {
		memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	return 0;
}

/* One CREDIT frame per stream that owes one, while the queue is short. */
static int frame_credits(struct ctl *c)
{
	if (!c->credit_due || ctl_queued_bytes(c) >= CREDIT_BELOW)
		return 0;
	for (size_t i = 0; i < c->nst; i++) {
		struct ctl_stream *s = &c->st[i];
		if (s->credit_owed == 0)
			continue;
		uint8_t b[4];
		put_u32(b, s->credit_owed);
		int r = proto_msg_frame(&c->out, PT_CREDIT, s->id, b, 4);
		if (r < 0)
			return r;
		s->credit_owed = 0;
	}
	c->credit_due = false;
	return 0;
}

/* Once the queue is back under half its bound, stdin that was cut short may go on. The ids
 * are collected first: a callback may add or drop streams. */
static void wake_stdin(struct ctl *c)
{
	if (!c->stdin_waits || ctl_queued_bytes(c) >= CTL_QUEUE_MAX / 2)
		return;
	c->stdin_waits = false;
	uint32_t ids[64];
	size_t n = 0;
	for (size_t i = 0; i < c->nst; i++) {
		if (!c->st[i].stdin_waits)
			continue;
		if (n == sizeof(ids) / sizeof(ids[0])) {
			c->stdin_waits = true; /* the rest next time */
			break;
		}
		c->st[i].stdin_waits = false;
		ids[n++] = c->st[i].id;
	}
	for (size_t i = 0; i < n && !c->dead; i++) {
		struct ctl_stream *s = stream_find(c, ids[i]);
		if (s && s->ops->stdin_ready)
			s->ops->stdin_ready(s->arg);
	}
}

int ctl_on_writable(struct ctl *c)
{
	if (c->dead)
		return -EPIPE;
	int r = out_write(c);
	if (r == 0 && c->credit_due && ctl_queued_bytes(c) < CREDIT_BELOW) {
		r = frame_credits(c);
		if (r == 0)
			r = out_write(c);
	}
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return channel_broken(c, strerror(-r));
	wake_stdin(c);
	return 0;
}

/* Keeps the frames encoded since mark only if the queue stays within its bound. */
static int queue_check(struct ctl *c, size_t mark, int r)
{
	if (r == 0 && ctl_queued_bytes(c) > CTL_QUEUE_MAX)
		r = -ENOBUFS;
	if (r < 0)
		c->out.len = mark;
	return r;
}

/* Queue one frame and try to send it at once: most frames leave without a poll round trip. */
static int send_frame(struct ctl *c, uint16_t type, uint32_t stream, const void *p, size_t n)
{
	if (c->dead)
		return -EPIPE;
	size_t mark = c->out.len;
	int r = queue_check(c, mark, proto_msg_frame(&c->out, type, stream, p, n));
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

/* A boot-sequence frame outside its state (a replayed HELLO, READY or config ERROR) would make
 * our caller act twice: it is ignored, counted, and said once in the log. */
static int out_of_turn(struct ctl *c, const struct proto_frame *f)
{
	if (c->ignored++ == 0)
		ml_warn("guest control channel: %s out of turn; ignoring such frames",
			proto_type_name(f->type));
	return 0;
}

static int on_hello(struct ctl *c, const struct proto_frame *f)
{
	char text[1024];
	if (c->boot != BOOT_WAIT_HELLO)
		return out_of_turn(c, f);
	struct cursor cur = { { f->payload, f->len }, 0, 0 };
	uint32_t ver = cur_u32(&cur);
	if (cur.bad)
		return channel_broken(c, "malformed HELLO");
	struct proto_frame rest = *f;
	rest.payload += 4;
	rest.len -= 4;
	payload_text(&rest, text, sizeof(text));
	c->boot = BOOT_WAIT_CONFIG;
	if (c->ops->hello)
		c->ops->hello(c->arg, ver, text);
	return 0;
}

static int on_session_frame(struct ctl *c, const struct proto_frame *f)
{
	char text[1024];
	switch (f->type) {
	case PT_HELLO:
		return on_hello(c, f);
	case PT_READY:
		if (c->boot != BOOT_WAIT_READY)
			return out_of_turn(c, f);
		c->boot = BOOT_UP;
		if (c->ops->ready)
			c->ops->ready(c->arg);
		return 0;
	case PT_ERROR:
		if (c->boot != BOOT_WAIT_READY)
			return out_of_turn(c, f);
		c->boot = BOOT_FAILED;
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

/* The guest may have PROTO_WINDOW bytes out beyond the CREDITs we framed for it; what we
 * consumed but still owe counts as out, since the guest cannot know of it yet. */
static int on_output(struct ctl *c, struct ctl_stream *s, const struct proto_frame *f)
{
	if (f->len > PROTO_WINDOW - s->out_unacked - s->credit_owed)
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
	while (!c->dead && total < READ_BUDGET && ctl_wants_read(c)) {
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
	if (c->dead)
		return -EPIPE;
	if (c->boot != BOOT_WAIT_HELLO && c->boot != BOOT_WAIT_CONFIG)
		return -EALREADY; /* CONFIG goes once */
	size_t mark = c->out.len;
	int r = queue_check(c, mark, proto_config_encode(&c->out, cfg));
	if (r < 0)
		return r;
	c->boot = BOOT_WAIT_READY;
	return ctl_on_writable(c);
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
	uint32_t id = c->next_id;
	while (id == 0 || stream_find(c, id)) /* after a wrap, skip ids still in use */
		id++;
	c->next_id = id + 1;
	size_t mark = c->out.len;
	int r = queue_check(c, mark, proto_exec_encode(&c->out, id, x));
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
	if (c->dead)
		return -EPIPE;
	if (len == 0) {
		int r = send_frame(c, PT_STDIN, stream, NULL, 0);
		if (r == 0)
			s->stdin_done = true;
		return r < 0 ? r : 0;
	}
	/* As much as the stream's window and the queue's bound (with a header per chunk) allow. */
	size_t room = PROTO_WINDOW - s->stdin_unacked;
	size_t queued = ctl_queued_bytes(c), qroom = 0;
	size_t chunks = (room + PROTO_DATA_CHUNK - 1) / PROTO_DATA_CHUNK;
	if (queued + chunks * PROTO_HDR_LEN < CTL_QUEUE_MAX)
		qroom = CTL_QUEUE_MAX - queued - chunks * PROTO_HDR_LEN;
	size_t take = len < room ? len : room;
	if (take > qroom) {
		take = qroom;
		s->stdin_waits = c->stdin_waits = true;
	}
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
	s->credit_owed += (uint32_t)n;
	c->credit_due = true;
	return c->dead ? -EPIPE : ctl_on_writable(c);
}

int ctl_exec_release(struct ctl *c, uint32_t stream)
{
	if (!stream_find(c, stream))
		return 0;
	stream_drop(c, stream);
	if (c->dead)
		return 0;
	/* The guest would run it on with nobody reading; its late frames are ignored as those of
	 * an unknown stream. The CANCEL goes even past the queue's bound (12 bytes, at most one
	 * per stream ever opened), so a full queue cannot leave the exec running. */
	int r = proto_msg_frame(&c->out, PT_CANCEL, stream, NULL, 0);
	return r < 0 ? r : ctl_on_writable(c);
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
