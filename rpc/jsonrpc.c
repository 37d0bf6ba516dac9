/* rpc/jsonrpc.c - see jsonrpc.h. */
#include "rpc/jsonrpc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (256u << 10)
#define TAIL_KEEP 64u

struct outline {
	struct outline *next;
	char *data;
	size_t len, off;
	void (*written)(void *arg, bool sent);
	void *arg;
};

struct rpc_conn {
	struct ml_loop *loop;
	int in_fd, out_fd;
	size_t max_line;
	const struct rpc_conn_ops *ops;
	void *arg;
	/* input */
	char *buf;
	size_t len, cap;
	bool skipping;           /* inside an overlong line: dropping bytes until '\n' */
	char tail[TAIL_KEEP];    /* last bytes of the line being skipped */
	size_t tail_len;
	bool paused, in_eof;
	/* output */
	struct outline *head, *last;
	size_t queued;
	bool closed, reported;
};

static void watch(struct rpc_conn *c);

static void report_closed(struct rpc_conn *c)
{
	if (c->reported)
		return;
	c->reported = true;
	c->closed = true;
	ml_loop_unwatch(c->loop, c->in_fd);
	if (c->out_fd != c->in_fd)
		ml_loop_unwatch(c->loop, c->out_fd);
	if (c->ops->closed)
		c->ops->closed(c->arg, c);
}

/* ---- output ---- */
static void drop_output(struct rpc_conn *c)
{
	while (c->head) {
		struct outline *o = c->head;
		c->head = o->next;
		if (o->written)
			o->written(o->arg, false);
		free(o->data);
		free(o);
	}
	c->last = NULL;
	c->queued = 0;
}

static void flush_out(struct rpc_conn *c)
{
	while (c->head) {
		struct outline *o = c->head;
		ssize_t w = write(c->out_fd, o->data + o->off, o->len - o->off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0) {
			/* the peer is gone: same as EOF on its input */
			drop_output(c);
			report_closed(c);
			return;
		}
		o->off += (size_t)w;
		c->queued -= (size_t)w;
		if (o->off < o->len)
			continue;
		c->head = o->next;
		if (!c->head)
			c->last = NULL;
		if (o->written)
			o->written(o->arg, true);
		free(o->data);
		free(o);
	}
}

int rpc_conn_send(struct rpc_conn *c, json_t *msg, void (*written)(void *arg, bool sent), void *arg)
{
	if (!msg || c->closed) {
		json_decref(msg);
		if (written)
			written(arg, false);
		return msg ? -EPIPE : -ENOMEM;
	}
	char *s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	struct outline *o = s ? calloc(1, sizeof(*o)) : NULL;
	if (!o) {
		free(s);
		if (written)
			written(arg, false);
		return -ENOMEM;
	}
	size_t n = strlen(s);
	/* json_dumps never emits a raw newline (strings escape it), so one line it is */
	char *line = realloc(s, n + 1);
	if (!line) {
		free(s);
		free(o);
		if (written)
			written(arg, false);
		return -ENOMEM;
	}
	line[n] = '\n';
	*o = (struct outline){ .data = line, .len = n + 1, .written = written, .arg = arg };
	if (c->last)
		c->last->next = o;
	else
		c->head = o;
	c->last = o;
	c->queued += o->len;
	flush_out(c);
	if (!c->closed)
		watch(c);
	return 0;
}

size_t rpc_conn_queued(const struct rpc_conn *c) { return c->queued; }
bool rpc_conn_is_closed(const struct rpc_conn *c) { return c->closed; }

void rpc_conn_flush(struct rpc_conn *c, int timeout_ms)
{
	int64_t end = ml_now_ms() + timeout_ms;
	while (c->head && !c->closed) {
		int64_t left = end - ml_now_ms();
		if (left <= 0)
			return;
		struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return;
		flush_out(c);
	}
}

/* ---- input ---- */
/* The tail of a dropped line: `..."id":123}` lets us answer the request it carried. */
static bool tail_id(const char *t, size_t n, uint64_t *id)
{
	while (n > 0 && isspace((unsigned char)t[n - 1]))
		n--;
	if (n == 0 || t[n - 1] != '}')
		return false;
	n--;
	while (n > 0 && isspace((unsigned char)t[n - 1]))
		n--;
	size_t end = n;
	while (n > 0 && isdigit((unsigned char)t[n - 1]))
		n--;
	if (n == end || end - n > 19)
		return false;
	size_t dstart = n;
	while (n > 0 && isspace((unsigned char)t[n - 1]))
		n--;
	if (n == 0 || t[n - 1] != ':')
		return false;
	n--;
	while (n > 0 && isspace((unsigned char)t[n - 1]))
		n--;
	if (n < 4 || memcmp(t + n - 4, "\"id\"", 4) != 0)
		return false;
	*id = strtoull(t + dstart, NULL, 10);
	return true;
}

static void keep_tail(struct rpc_conn *c, const char *p, size_t n)
{
	if (n >= TAIL_KEEP) {
		memcpy(c->tail, p + n - TAIL_KEEP, TAIL_KEEP);
		c->tail_len = TAIL_KEEP;
		return;
	}
	size_t keep = c->tail_len + n > TAIL_KEEP ? TAIL_KEEP - n : c->tail_len;
	memmove(c->tail, c->tail + c->tail_len - keep, keep);
	memcpy(c->tail + keep, p, n);
	c->tail_len = keep + n;
}

/* Consumes whole lines from buf; returns false if the conn went away meanwhile. */
static void take_lines(struct rpc_conn *c)
{
	size_t start = 0;
	while (!c->paused && !c->closed) {
		char *nl = memchr(c->buf + start, '\n', c->len - start);
		if (!nl)
			break;
		size_t n = (size_t)(nl - (c->buf + start));
		char *line = c->buf + start;
		start += n + 1;
		if (c->skipping) {
			keep_tail(c, line, n);
			c->skipping = false;
			uint64_t id = 0;
			bool has = tail_id(c->tail, c->tail_len, &id);
			c->tail_len = 0;
			if (c->ops->overlong)
				c->ops->overlong(c->arg, c, has, id);
			continue;
		}
		if (n > c->max_line) {
			c->tail_len = 0;
			keep_tail(c, line, n);
			uint64_t id = 0;
			bool has = tail_id(c->tail, c->tail_len, &id);
			if (c->ops->overlong)
				c->ops->overlong(c->arg, c, has, id);
			continue;
		}
		line[n] = '\0';
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		size_t sp = 0;
		while (sp < n && isspace((unsigned char)line[sp]))
			sp++;
		if (sp == n)
			continue;
		c->ops->line(c->arg, c, line, n);
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	/* a line that outgrew the limit before its end arrived: drop what we hold of it */
	if (!c->skipping && c->len > c->max_line) {
		c->skipping = true;
		c->tail_len = 0;
		keep_tail(c, c->buf, c->len);
		c->len = 0;
	} else if (c->skipping && c->len > 0 && !memchr(c->buf, '\n', c->len)) {
		keep_tail(c, c->buf, c->len);
		c->len = 0;
	}
}

static void read_in(struct rpc_conn *c)
{
	if (c->cap - c->len < READ_CHUNK) {
		size_t ncap = c->cap ? c->cap : READ_CHUNK * 2;
		while (ncap - c->len < READ_CHUNK)
			ncap *= 2;
		char *nb = realloc(c->buf, ncap);
		if (!nb) {
			report_closed(c);
			return;
		}
		c->buf = nb;
		c->cap = ncap;
	}
	ssize_t n = read(c->in_fd, c->buf + c->len, READ_CHUNK);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		c->in_eof = true;
		/* a last line without '\n' still counts */
		if (c->len > 0 && !c->skipping && c->len < c->cap) {
			c->buf[c->len++] = '\n';
			take_lines(c);
		}
		if (!c->paused)
			report_closed(c);
		return;
	}
	c->len += (size_t)n;
	take_lines(c);
	/* the buffer never keeps more than one partial line: shrink after a big one */
	if (c->len == 0 && c->cap > 4 * READ_CHUNK) {
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
}

static void on_io(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	struct rpc_conn *c = arg;
	if (fd == c->out_fd && (rev & (POLLOUT | POLLERR | POLLHUP)) && c->head)
		flush_out(c);
	if (!c->closed && fd == c->in_fd && (rev & (POLLIN | POLLHUP | POLLERR)) && !c->paused)
		read_in(c);
	if (!c->closed)
		watch(c);
}

static void watch(struct rpc_conn *c)
{
	short in_ev = c->paused || c->in_eof ? 0 : POLLIN;
	short out_ev = c->head ? POLLOUT : 0;
	if (c->in_fd == c->out_fd) {
		ml_loop_watch(c->loop, c->in_fd, in_ev | out_ev, on_io, c);
		return;
	}
	ml_loop_watch(c->loop, c->in_fd, in_ev, on_io, c);
	ml_loop_watch(c->loop, c->out_fd, out_ev, on_io, c);
}

void rpc_conn_pause(struct rpc_conn *c, bool paused)
{
	if (c->closed || c->paused == paused)
		return;
	c->paused = paused;
	if (!paused) {
		take_lines(c);
		if (c->closed)
			return;
		if (c->in_eof && !c->paused) {
			report_closed(c);
			return;
		}
	}
	watch(c);
}

int rpc_conn_new(struct ml_loop *l, int in_fd, int out_fd, size_t max_line, const struct rpc_conn_ops *ops,
		 void *arg, struct rpc_conn **out, struct ml_err *e)
{
	struct rpc_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return ml_err_set(e, -ENOMEM, "out of memory");
	*c = (struct rpc_conn){ .loop = l, .in_fd = in_fd, .out_fd = out_fd, .max_line = max_line,
				.ops = ops, .arg = arg };
	fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
	fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
	watch(c);
	*out = c;
	return 0;
}

void rpc_conn_shutdown(struct rpc_conn *c)
{
	drop_output(c);
	report_closed(c);
}

void rpc_conn_free(struct rpc_conn *c)
{
	if (!c)
		return;
	c->reported = true; /* no `closed` callback from here on */
	ml_loop_unwatch(c->loop, c->in_fd);
	if (c->out_fd != c->in_fd)
		ml_loop_unwatch(c->loop, c->out_fd);
	drop_output(c);
	if (c->in_fd > 2)
		close(c->in_fd);
	if (c->out_fd > 2 && c->out_fd != c->in_fd)
		close(c->out_fd);
	free(c->buf);
	free(c);
}

/* ---- messages ---- */
static json_t *with_id(json_t *m, bool has_id, uint64_t id)
{
	if (m && has_id)
		json_object_set_new(m, "id", json_integer((json_int_t)id));
	return m;
}

json_t *rpc_msg_result(bool has_id, uint64_t id, json_t *result)
{
	json_t *m = json_pack("{s:s, s:o}", "jsonrpc", "2.0", "result", result ? result : json_object());
	return with_id(m, has_id, id);
}

json_t *rpc_msg_error(bool has_id, uint64_t id, int code, const char *message)
{
	json_t *m = json_pack("{s:s, s:{s:i, s:s}}", "jsonrpc", "2.0", "error", "code", code, "message", message);
	return with_id(m, has_id, id);
}

json_t *rpc_msg_notify(const char *method, json_t *params)
{
	return json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params ? params : json_object());
}

/* ---- base64 ---- */

static int b64_val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Strict, as Go's StdEncoding: length a multiple of 4, padding only at the end, no other
 * characters (Go skips \r and \n; so do we). */
int rpc_b64_decode(const char *s, size_t slen, uint8_t **out, size_t *out_len)
{
	uint8_t *o = malloc(slen / 4 * 3 + 3);
	if (!o)
		return -ENOMEM;
	size_t n = 0, q = 0, pad = 0;
	uint32_t acc = 0;
	for (size_t i = 0; i < slen; i++) {
		char ch = s[i];
		if (ch == '\r' || ch == '\n')
			continue;
		int v = ch == '=' ? 0 : b64_val(ch);
		if (v < 0 || (pad && ch != '=') || (ch == '=' && q < 2)) {
			free(o);
			return -EINVAL;
		}
		pad += ch == '=';
		acc = acc << 6 | (uint32_t)v;
		if (++q == 4) {
			o[n++] = (uint8_t)(acc >> 16);
			if (pad < 2)
				o[n++] = (uint8_t)(acc >> 8);
			if (pad < 1)
				o[n++] = (uint8_t)acc;
			q = 0;
			acc = 0;
		}
	}
	if (q != 0) {
		free(o);
		return -EINVAL;
	}
	*out = o;
	*out_len = n;
	return 0;
}
