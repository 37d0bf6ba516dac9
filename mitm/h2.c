/* mitm/h2.c - HTTP/2 on an intercepted TLS flow, when the guest and the upstream both chose it
 * (ALPN; tlsflow.c asks the upstream first and offers h2 to the guest only if it got h2).
 *
 * Two nghttp2 sessions, a server towards the guest and a client towards the upstream, driven
 * from our buffers (mem_recv / mem_send over the ends' TLS plaintext). Streams map 1:1: a
 * guest request's head is checked like an HTTP/1 request's (its :authority must be the SNI,
 * else 421; the allow-list as it is now; secrets substituted in header values and the query, a
 * placeholder for another host -> 403), then submitted upstream; the response head and body
 * come back on the guest's stream. Bodies are never held: flow control is manual (a DATA
 * frame's bytes are acknowledged to its sender only once the other session has taken them), so
 * each direction holds at most one connection window of data. Every stream is an event and an
 * audit line. Hook rules are not applied here: with rules configured, the guest is offered
 * http/1.1 only (tlsflow.c), where they run.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "mitm/h2.h"
#include "mitm/proxy.h"
#include "mitm/tls.h"

#define H2_MAX_STREAMS 100
#define H2_HEAD_MAX (64u * 1024u)
/* What either side may send ahead of our acknowledgments: at most this much is held per
 * connection and direction (1 MiB per stream, 4 MiB per connection). */
#define H2_STREAM_WINDOW (1u << 20)
#define H2_CONN_WINDOW (4u << 20)

struct h2s {                      /* one stream, both sessions */
	int32_t gid, uid;             /* guest / upstream stream id (uid 0: not submitted or closed) */
	struct hdrs hd;               /* request headers (regular ones) */
	char *method, *path, *authority, *url;
	uint32_t head_bytes;
	struct iob up, down;          /* request body to the upstream, response body to the guest */
	bool req_end, resp_end, resp_sent;
	struct hdrs rhd;              /* response headers */
	int status;
	uint64_t req_bytes, resp_bytes, secrets_used;
	int64_t start_ms;
	bool emitted;
	const char *reason;
	bool blocked;
	struct h2s *prev, *next;      /* every live stream (nghttp2 frees none of ours) */
};

struct h2conn {
	nghttp2_session *g, *u;       /* server (guest), client (upstream) */
	struct mitm *m;
	struct hx *hx;
	unsigned open;                /* streams open on the guest's side */
	bool failed;
	struct h2s *streams;
};

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stream_free(struct h2s *s)
{
	hdrs_free(&s->hd);
	hdrs_free(&s->rhd);
	iob_free(&s->up);
	iob_free(&s->down);
	free(s->method);
	free(s->path);
	free(s->authority);
	free(s->url);
	free(s);
}

static void emit(struct h2conn *c, struct h2s *s)
{
	struct intercept *ic = c->m->icpt;
	const char *names[64];
	size_t n = 0, plen = s->path ? strcspn(s->path, "?") : 0;
	char path[2048];

	if (s->emitted)
		return;
	s->emitted = true;
	if (s->status >= 200 && s->status < 500)
		tls_client_remember(c->m, c->hx);   /* (once per upstream session) */
	for (size_t i = 0; i < ic->secrets.n && i < 64; i++)
		if (s->secrets_used & (1ull << i))
			names[n++] = ic->secrets.v[i].name;
	snprintf(path, sizeof(path), "%.*s", (int)plen, s->path ? s->path : "");
	struct mitm_http_event ev = {
		.time_ms = real_ms(), .method = s->method ? s->method : "", .url = s->url ? s->url : "",
		.host = c->hx->tgt.host, .path = path, .status = s->status,
		.request_bytes = s->req_bytes, .response_bytes = s->resp_bytes,
		.duration_ms = (uint32_t)(c->m->now_ms - s->start_ms), .blocked = s->blocked,
		.reason = s->reason ? s->reason : "", .rule = "", .secrets = names, .n_secrets = n,
	};
	audit_event(c->m, &ev);
}

/* ---- data providers: our buffers into the sessions ---- */
static ssize_t read_down(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = src->ptr;
	size_t k = s->down.len < len ? s->down.len : len;

	(void)sess;
	(void)id;
	if (!k && !s->resp_end)
		return NGHTTP2_ERR_DEFERRED;
	if (k) {
		memcpy(buf, s->down.d + s->down.off, k);
		iob_consume(&s->down, k);
		/* the upstream may send that much more (its stream may be closed already: then the
		 * connection's window still needs the credit) */
		if (s->uid > 0)
			nghttp2_session_consume(c->u, s->uid, k);
		else
			nghttp2_session_consume_connection(c->u, k);
	}
	if (s->resp_end && !s->down.len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)k;
}

static ssize_t read_up(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = src->ptr;
	size_t k = s->up.len < len ? s->up.len : len;

	(void)sess;
	(void)id;
	if (!k && !s->req_end)
		return NGHTTP2_ERR_DEFERRED;
	if (k) {
		memcpy(buf, s->up.d + s->up.off, k);
		iob_consume(&s->up, k);
		nghttp2_session_consume(c->g, s->gid, k);
	}
	if (s->req_end && !s->up.len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)k;
}

static nghttp2_nv nv(const char *name, const char *value)
{
	return (nghttp2_nv){ (uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
			     NGHTTP2_NV_FLAG_NONE };
}

/* A response of our own on the guest's stream (403, 421, 502). */
static void local_reply(struct h2conn *c, struct h2s *s, int status, const char *body, bool blocked,
			const char *reason)
{
	char st[16];
	nghttp2_nv h[2];
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = read_down };

	snprintf(st, sizeof(st), "%d", status);
	h[0] = nv(":status", st);
	h[1] = nv("content-type", "text/plain; charset=utf-8");
	s->status = status;
	s->blocked = blocked;
	s->reason = reason;
	if (s->down.len)   /* upstream data dropped: its window is credited */
		nghttp2_session_consume_connection(c->u, s->down.len);
	iob_free(&s->down);
	iob_put(&s->down, body, strlen(body));
	s->resp_bytes = strlen(body);
	s->resp_end = s->resp_sent = true;
	if (s->uid > 0) {
		nghttp2_session_set_stream_user_data(c->u, s->uid, NULL);
		nghttp2_submit_rst_stream(c->u, NGHTTP2_FLAG_NONE, s->uid, NGHTTP2_CANCEL);
		s->uid = 0;
	}
	nghttp2_submit_response(c->g, s->gid, h, 2, &prd);
	emit(c, s);
}

/* ---- the guest's side ---- */
static int g_begin(nghttp2_session *sess, const nghttp2_frame *f, void *user)
{
	struct h2conn *c = user;
	struct h2s *s;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (!(s = calloc(1, sizeof(*s))))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	s->gid = f->hd.stream_id;
	s->start_ms = c->m->now_ms;
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	c->open++;
	return nghttp2_session_set_stream_user_data(sess, s->gid, s);
}

static int set_str(char **dst, const uint8_t *v, size_t n)
{
	free(*dst);
	*dst = strndup((const char *)v, n);
	return *dst ? 0 : -1;
}

static int g_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
		    const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
	int r = 0;

	(void)flags;
	(void)user;
	if (!s || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	s->head_bytes += (uint32_t)(nlen + vlen + 32);
	if (s->head_bytes > H2_HEAD_MAX)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* resets the stream */
	if (nlen == 7 && !memcmp(name, ":method", 7))
		r = set_str(&s->method, value, vlen);
	else if (nlen == 5 && !memcmp(name, ":path", 5))
		r = set_str(&s->path, value, vlen);
	else if (nlen == 10 && !memcmp(name, ":authority", 10))
		r = set_str(&s->authority, value, vlen);
	else if (nlen == 4 && !memcmp(name, "host", 4) && !s->authority)
		r = set_str(&s->authority, value, vlen);
	else if (name[0] != ':')
		r = hdrs_add(&s->hd, (const char *)name, nlen, (const char *)value, vlen);
	return r < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* The request's head is complete: check it like an HTTP/1 request's, then send it on. */
static void g_request(struct h2conn *c, struct h2s *s, bool end)
{
	struct hx *hx = c->hx;
	char host[NAME_MAX_LEN + 1] = "";
	const char *bad = NULL;
	nghttp2_nv *h;
	size_t n = 0;
	int r;

	s->req_end = end;
	if (asprintf(&s->url, "https://%s%s", s->authority ? s->authority : hx->sni, s->path ? s->path : "") < 0)
		s->url = NULL;
	if (!s->method || !s->path) {
		local_reply(c, s, 400, "Bad request\n", false, "bad request");
		return;
	}
	if (s->authority && (!host_from_authority(s->authority, host, sizeof(host)) || strcmp(host, hx->sni))) {
		local_reply(c, s, 421, "Misdirected Request: the authority does not match the TLS server name\n",
			    true, "host does not match the TLS server name");
		return;
	}
	if (!hx->tgt.gateway && !policy_name_allowed(c->m, hx->tgt.host, hx->tgt.port)) {
		local_reply(c, s, 403, "Blocked by policy\n", true, "host not in allowlist");
		return;
	}
	r = secrets_apply(&c->m->icpt->secrets, hx->tgt.host, &s->hd, &s->path, &s->secrets_used, &bad);
	if (r == -EACCES) {
		local_reply(c, s, 403, "secret placeholder sent to unauthorized host\n", true,
			    "secret placeholder sent to unauthorized host");
		return;
	}
	if (r < 0 || !(h = calloc(4 + s->hd.n, sizeof(*h)))) {
		local_reply(c, s, 500, "out of memory\n", false, "out of memory");
		return;
	}
	h[n++] = nv(":method", s->method);
	h[n++] = nv(":scheme", "https");
	h[n++] = nv(":authority", s->authority ? s->authority : hx->sni);
	h[n++] = nv(":path", s->path);
	for (uint32_t i = 0; i < s->hd.n; i++)
		if (!s->hd.v[i].dead)
			h[n++] = nv(hdr_name(&s->hd, &s->hd.v[i]), hdr_value(&s->hd, &s->hd.v[i]));
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = read_up };
	s->uid = nghttp2_submit_request(c->u, NULL, h, n, end ? NULL : &prd, s);
	free(h);
	if (s->uid < 0) {
		s->uid = 0;
		local_reply(c, s, 502, "upstream HTTP/2 session refused the request\n", false, "upstream refused");
	}
}

static int g_frame(nghttp2_session *sess, const nghttp2_frame *f, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	if (!s)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		g_request(c, s, end);
	else if (end && !s->req_end) {
		s->req_end = true;
		if (s->uid > 0)
			nghttp2_session_resume_data(c->u, s->uid);
	}
	return 0;
}

static int g_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, id);

	(void)flags;
	if (!s || (s->resp_sent && !s->uid)) {
		nghttp2_session_consume(c->g, id, len);   /* answered already: dropped */
		return 0;
	}
	s->req_bytes += len;
	if (iob_put(&s->up, data, len) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (s->uid > 0)
		nghttp2_session_resume_data(c->u, s->uid);
	return 0;
}

static int g_close(nghttp2_session *sess, int32_t id, uint32_t err, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, id);

	(void)err;
	if (!s)
		return 0;
	if (s->uid > 0) {
		nghttp2_session_set_stream_user_data(c->u, s->uid, NULL);
		nghttp2_submit_rst_stream(c->u, NGHTTP2_FLAG_NONE, s->uid, NGHTTP2_CANCEL);
	}
	emit(c, s);
	if (s->up.len)   /* the guest's data we did not forward: its window is credited */
		nghttp2_session_consume_connection(c->g, s->up.len);
	if (s->down.len)
		nghttp2_session_consume_connection(c->u, s->down.len);
	nghttp2_session_set_stream_user_data(sess, id, NULL);
	c->open--;
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	stream_free(s);
	return 0;
}

/* ---- the upstream's side ---- */
static int u_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
		    const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);

	(void)flags;
	(void)user;
	if (!s || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_RESPONSE)
		return 0;
	if (nlen == 7 && !memcmp(name, ":status", 7)) {
		s->status = atoi((const char *)value);
		return 0;
	}
	return hdrs_add(&s->rhd, (const char *)name, nlen, (const char *)value, vlen) < 0
		       ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static void u_response(struct h2conn *c, struct h2s *s, bool end)
{
	char st[16];
	nghttp2_nv *h = calloc(1 + s->rhd.n, sizeof(*h));
	size_t n = 0;
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = read_down };

	if (!h) {
		c->failed = true;
		return;
	}
	snprintf(st, sizeof(st), "%d", s->status);
	h[n++] = nv(":status", st);
	for (uint32_t i = 0; i < s->rhd.n; i++)
		h[n++] = nv(hdr_name(&s->rhd, &s->rhd.v[i]), hdr_value(&s->rhd, &s->rhd.v[i]));
	s->resp_end = end;
	s->resp_sent = true;
	nghttp2_submit_response(c->g, s->gid, h, n, &prd);
	free(h);
}

static int u_frame(nghttp2_session *sess, const nghttp2_frame *f, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	if (!s)
		return 0;
	/* (interim 1xx heads come as HEADERS of category HEADERS before the response: skipped) */
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE && s->status >= 200) {
		u_response(c, s, end);
	} else if (end && s->resp_sent) {
		s->resp_end = true;
		nghttp2_session_resume_data(c->g, s->gid);
	}
	return 0;
}

static int u_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, id);

	(void)flags;
	if (!s) {
		nghttp2_session_consume(c->u, id, len);
		return 0;
	}
	s->resp_bytes += len;
	if (iob_put(&s->down, data, len) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	nghttp2_session_resume_data(c->g, s->gid);
	return 0;
}

static int u_close(nghttp2_session *sess, int32_t id, uint32_t err, void *user)
{
	struct h2conn *c = user;
	struct h2s *s = nghttp2_session_get_stream_user_data(sess, id);

	if (!s)
		return 0;
	s->uid = 0;
	if (!s->resp_sent)
		local_reply(c, s, 502, "the upstream reset the stream before answering\n", false, "upstream reset");
	else if (err != NGHTTP2_NO_ERROR && !s->resp_end)
		nghttp2_submit_rst_stream(c->g, NGHTTP2_FLAG_NONE, s->gid, NGHTTP2_INTERNAL_ERROR);
	return 0;
}

/* ---- set-up and the pump ---- */
static int session(struct h2conn *c, bool server)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry giv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
					 { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_HEAD_MAX },
					 { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW } };
	nghttp2_settings_entry uiv[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },   /* no pushes to relay */
					 { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW } };
	int r;

	if (nghttp2_session_callbacks_new(&cb) || nghttp2_option_new(&opt))
		return -ENOMEM;
	/* a DATA frame is acknowledged once the other side took it: backpressure, bounded memory */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_session_callbacks_set_on_header_callback(cb, server ? g_header : u_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, server ? g_frame : u_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, server ? g_data : u_data);
	if (server) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb, g_begin);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, g_close);
		r = nghttp2_session_server_new2(&c->g, cb, c, opt);
	} else {
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, u_close);
		r = nghttp2_session_client_new2(&c->u, cb, c, opt);
	}
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (r)
		return -ENOMEM;
	if (server ? nghttp2_submit_settings(c->g, NGHTTP2_FLAG_NONE, giv, 3)
		   : nghttp2_submit_settings(c->u, NGHTTP2_FLAG_NONE, uiv, 2))
		return -EPROTO;
	return nghttp2_session_set_local_window_size(server ? c->g : c->u, NGHTTP2_FLAG_NONE, 0,
						     H2_CONN_WINDOW) ? -EPROTO : 0;
}

int h2_start(struct mitm *m, struct hx *hx)
{
	struct h2conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->m = m;
	c->hx = hx;
	hx->h2 = c;
	if (session(c, true) < 0 || session(c, false) < 0)
		return -ENOMEM;
	m->st.h2_connections++;
	return 0;
}

void h2_free(struct h2conn *c)
{
	if (!c)
		return;
	while (c->streams) {
		struct h2s *s = c->streams;

		c->streams = s->next;
		stream_free(s);
	}
	if (c->g)
		nghttp2_session_del(c->g);
	if (c->u)
		nghttp2_session_del(c->u);
	free(c);
}

/* An end's bytes into its session, then what the session has to send into that end's out
 * buffer (while it has room). True on progress; a protocol error sets failed. */
static bool feed(struct h2conn *c, nghttp2_session *s, struct ep *e)
{
	bool p = false;

	if (e->in.len) {
		ssize_t r = nghttp2_session_mem_recv(s, e->in.d + e->in.off, e->in.len);

		if (r < 0) {
			ml_debug("mitm: h2: %s", nghttp2_strerror((int)r));
			c->failed = true;
			return true;
		}
		iob_consume(&e->in, (size_t)r);
		p = r > 0;
	}
	while (ep_out_room(e)) {
		const uint8_t *out;
		ssize_t r = nghttp2_session_mem_send(s, &out);

		if (r < 0) {
			c->failed = true;
			return true;
		}
		if (!r)
			break;
		if (iob_put(&e->out, out, (size_t)r) < 0) {
			c->failed = true;
			return true;
		}
		p = true;
	}
	return p;
}

bool h2_pump(struct mitm *m, struct hx *hx)
{
	struct h2conn *c = hx->h2;
	bool p = false;

	(void)m;
	if (hx->up != UP_READY) {
		c->failed = hx->up == UP_FAILED;
		return false;
	}
	p |= feed(c, c->g, &hx->g);
	p |= feed(c, c->u, &hx->u);
	p |= feed(c, c->g, &hx->g);   /* what the upstream's frames queued for the guest */
	return p;
}

bool h2_finished(const struct hx *hx, bool *failed)
{
	const struct h2conn *c = hx->h2;

	*failed = c->failed || hx->u.err || (hx->u.eof && c->open);
	if (*failed)
		return true;
	/* the guest is gone (or said GOAWAY and has no stream left) and all was written */
	return (hx->g.eof || (!nghttp2_session_want_read(c->g) && !nghttp2_session_want_write(c->g))) &&
	       !ep_out_pending(&hx->g);
}

bool h2_idle(const struct hx *hx)
{
	return !hx->h2->open;
}
