/* tests/unit/proxy_world.h - the world the proxy tests drive (test-only; included once, after
 * <cmocka.h>): a scripted HTTP upstream on loopback (a thread per connection), reached through
 * mitm's test hooks (names resolve to 198.51.100.x, connects to those go to loopback), a guest
 * end (a socketpair), and a loop that runs mitm_poll_fill/poll/done while the test waits for
 * bytes.
 *
 * The upstream answers by path:
 *   /hello          200, "hello" (Content-Length)     /chunked   200, chunked "abcdef"
 *   /echo           200, the request head it received, then "|", then the body it received
 *   /close          200, no length, "bye", closes      /never     reads, never answers
 *   /garbage        "NOT HTTP" and closes              /reset     a 1 MB promise, 1000 bytes, RST
 *   /ws             101, then echoes raw bytes         /continue  100 Continue, then the body size
 *   /sse            event-stream: "data: one", then waits for up_release(), "data: two"
 *   /big            4 MiB of a pattern (Content-Length)
 *   /resp-headers   200, X-Upstream: 1, Content-Type text/plain, "foo bar foo"
 *   /once           200 "fresh" as a connection's first request; later on the same
 *                   connection: closes without answering (an idle connection gone stale)
 * HEAD gets the head only. Every request head is appended to up->log (tests grep it).
 */
#ifndef ML_TESTS_PROXY_WORLD_H
#define ML_TESTS_PROXY_WORLD_H

/* Each test file uses a part of this world. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "base/loop.h"
#include "mitm/intercept.h"
#include "mitm/mitm.h"

#define WEB_IP "198.51.100.10"
#define PRIV_IP "10.99.0.10"

struct up {
	int lfd;
	uint16_t port;
	pthread_t thread;
	pthread_mutex_t mu;
	int accepts;
	char log[1 << 16];
	size_t log_len;
	int release;         /* /sse: the second event may go */
	bool tls;            /* (TLS tests) */
};

static struct up *g_up;   /* the hooks' target */

static void up_log(struct up *u, const char *s, size_t n)
{
	pthread_mutex_lock(&u->mu);
	if (u->log_len + n < sizeof(u->log)) {
		memcpy(u->log + u->log_len, s, n);
		u->log_len += n;
		u->log[u->log_len] = '\0';
	}
	pthread_mutex_unlock(&u->mu);
}

static bool up_log_has(struct up *u, const char *needle)
{
	bool r;

	pthread_mutex_lock(&u->mu);
	r = strstr(u->log, needle) != NULL;
	pthread_mutex_unlock(&u->mu);
	return r;
}

static int up_accepts(struct up *u)
{
	int n;

	pthread_mutex_lock(&u->mu);
	n = u->accepts;
	pthread_mutex_unlock(&u->mu);
	return n;
}

static void up_release(struct up *u)
{
	pthread_mutex_lock(&u->mu);
	u->release = 1;
	pthread_mutex_unlock(&u->mu);
}

/* One upstream connection: plain, or TLS (tls != NULL: a blocking GnuTLS server session). */
struct io {
	int fd;
	gnutls_session_t tls;
};

static ssize_t io_recv(struct io *c, void *p, size_t n)
{
	ssize_t r;

	if (!c->tls)
		return recv(c->fd, p, n, 0);
	do
		r = gnutls_record_recv(c->tls, p, n);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	return r < 0 ? -1 : r;
}

static ssize_t io_send(struct io *c, const void *p, size_t n)
{
	ssize_t r;

	if (!c->tls)
		return send(c->fd, p, n, MSG_NOSIGNAL);
	do
		r = gnutls_record_send(c->tls, p, n);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	return r < 0 ? -1 : r;
}

static void io_recv_all(struct io *c, void *p, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = io_recv(c, (char *)p + got, n - got);

		if (r <= 0)
			return;
		got += (size_t)r;
	}
}

static void send_str(struct io *c, const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = io_send(c, s, n);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Reads one request (head, and the body by Content-Length or chunked) into head/body. */
static int up_read_request(struct io *fd, char *head, size_t hcap, char *body, size_t bcap, size_t *blen)
{
	size_t n = 0;
	char *end;

	*blen = 0;
	while (!(end = memmem(head, n, "\r\n\r\n", 4))) {
		ssize_t r = n + 1 < hcap ? io_recv(fd, head + n, 1) : -1;

		if (r <= 0)
			return -1;
		n += (size_t)r;
	}
	head[n] = '\0';
	const char *cl = strcasestr(head, "\r\nContent-Length:");
	if (strstr(head, "Expect: 100-continue"))
		send_str(fd, "HTTP/1.1 100 Continue\r\n\r\n");
	if (cl) {
		size_t want = strtoul(cl + 17, NULL, 10);

		while (*blen < want && *blen < bcap) {
			ssize_t r = io_recv(fd, body + *blen, want - *blen < bcap - *blen ? want - *blen : bcap - *blen);
			if (r <= 0)
				return -1;
			*blen += (size_t)r;
		}
	} else if (strcasestr(head, "Transfer-Encoding: chunked")) {
		for (;;) {
			char line[64];
			size_t ln = 0, sz;

			while (ln < sizeof(line) - 1 && io_recv(fd, line + ln, 1) == 1 && line[ln] != '\n')
				ln++;
			line[ln] = '\0';
			sz = strtoul(line, NULL, 16);
			if (!sz) {
				io_recv_all(fd, line, 2);
				break;
			}
			for (size_t got = 0; got < sz;) {
				char tmp[4096];
				ssize_t r = io_recv(fd, tmp, sz - got < sizeof(tmp) ? sz - got : sizeof(tmp));
				if (r <= 0)
					return -1;
				if (*blen + (size_t)r <= bcap)
					memcpy(body + *blen, tmp, (size_t)r);
				*blen += (size_t)r;
				got += (size_t)r;
			}
			io_recv_all(fd, line, 2);
		}
	}
	return 0;
}

static void up_answer_big(struct io *fd)
{
	static char chunk[65536];
	char head[128];

	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)('a' + i % 26);
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", 4u << 20);
	send_str(fd, head);
	for (int i = 0; i < 64; i++)
		if (io_send(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
			return;
}

/* false: close the connection */
static bool up_answer(struct up *u, struct io *fd, const char *head, const char *body, size_t blen, int nth)
{
	char path[256] = "", buf[(1 << 16) + 256];
	bool is_head = !strncmp(head, "HEAD ", 5);

	sscanf(head, "%*s %255s", path);
	if (strstr(path, "/hello")) {
		send_str(fd, is_head ? "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
				     : "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
	} else if (strstr(path, "/chunked")) {
		send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n");
	} else if (strstr(path, "/echo")) {
		int n = snprintf(buf, sizeof(buf), "%s|%.*s", head, (int)blen, body);
		char h[96];

		snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n);
		send_str(fd, h);
		send_str(fd, buf);
	} else if (strstr(path, "/continue")) {
		snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n%08zu", blen);
		send_str(fd, buf);
	} else if (strstr(path, "/close")) {
		send_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye");
		return false;
	} else if (strstr(path, "/never")) {
		while (io_recv(fd, buf, sizeof(buf)) > 0)
			;
		return false;
	} else if (strstr(path, "/garbage")) {
		send_str(fd, "NOT HTTP\r\n\r\n");
		return false;
	} else if (strstr(path, "/reset")) {
		struct linger l = { 1, 0 };

		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
		memset(buf, 'x', 1000);
		io_send(fd, buf, 1000);
		usleep(100000);
		setsockopt(fd->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		return false;
	} else if (strstr(path, "/ws")) {
		ssize_t r;

		send_str(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
		while ((r = io_recv(fd, buf, sizeof(buf))) > 0)
			io_send(fd, buf, (size_t)r);
		return false;
	} else if (strstr(path, "/sse")) {
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
			     "a\r\ndata: one\n\r\n");
		for (int i = 0; i < 500; i++) {
			int go;

			pthread_mutex_lock(&u->mu);
			go = u->release;
			pthread_mutex_unlock(&u->mu);
			if (go)
				break;
			usleep(10000);
		}
		send_str(fd, "a\r\ndata: two\n\r\n0\r\n\r\n");
	} else if (strstr(path, "/once")) {
		if (nth > 1)
			return false;
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
	} else if (strstr(path, "/resp-headers")) {
		send_str(fd, "HTTP/1.1 200 OK\r\nX-Upstream: 1\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nfoo bar foo");
	} else if (strstr(path, "/resumed")) {
		send_str(fd, fd->tls && gnutls_session_is_resumed(fd->tls)
			     ? "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nresumed"
			     : "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfull");
	} else if (strstr(path, "/big")) {
		up_answer_big(fd);
	} else {
		send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	}
	return true;
}

struct up_conn {
	struct up *u;
	int fd;
};

/* TLS upstreams (up->tls): the server credentials and a ticket key for resumption. */
static gnutls_certificate_credentials_t g_up_cred;
static gnutls_datum_t g_up_ticket;

static void *up_conn_main(void *arg)
{
	struct up_conn *c = arg;
	enum { HEAD_CAP = 1 << 17, BODY_CAP = 1 << 20 };
	char *head = malloc(HEAD_CAP), *body = malloc(BODY_CAP);
	struct io io = { .fd = c->fd };
	size_t blen;
	int r;

	if (c->u->tls) {
		gnutls_init(&io.tls, GNUTLS_SERVER);
		gnutls_set_default_priority(io.tls);
		gnutls_credentials_set(io.tls, GNUTLS_CRD_CERTIFICATE, g_up_cred);
		gnutls_session_ticket_enable_server(io.tls, &g_up_ticket);
		gnutls_transport_set_int(io.tls, c->fd);
		do
			r = gnutls_handshake(io.tls);
		while (r < 0 && !gnutls_error_is_fatal(r));
		if (r < 0) {
			gnutls_deinit(io.tls);
			io.tls = NULL;
			free(head);
			head = NULL;   /* no requests on a failed handshake */
		}
	}
	for (int nth = 1; head && body && up_read_request(&io, head, HEAD_CAP, body, BODY_CAP, &blen) == 0; nth++) {
		up_log(c->u, head, strlen(head));
		if (!up_answer(c->u, &io, head, body, blen, nth))
			break;
	}
	if (io.tls) {
		gnutls_bye(io.tls, GNUTLS_SHUT_WR);
		gnutls_deinit(io.tls);
	}
	close(c->fd);
	free(head);
	free(body);
	free(c);
	return NULL;
}

static void *up_main(void *arg)
{
	struct up *u = arg;

	for (;;) {
		int fd = accept(u->lfd, NULL, NULL);
		struct up_conn *c;
		pthread_t t;

		if (fd < 0)
			return NULL;
		pthread_mutex_lock(&u->mu);
		u->accepts++;
		pthread_mutex_unlock(&u->mu);
		c = calloc(1, sizeof(*c));
		c->u = u;
		c->fd = fd;
		pthread_create(&t, NULL, up_conn_main, c);
		pthread_detach(t);
	}
}

/* Static: a connection thread may outlive its test (it ends when its peer closes). */
static struct up up_pool[48];
static unsigned up_used;

static struct up *up_start(void)
{
	struct up *u = up_used < 48 ? &up_pool[up_used++] : NULL;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1;

	assert_non_null(u);
	pthread_mutex_init(&u->mu, NULL);
	u->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(u->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(u->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(u->lfd, 128), 0);
	assert_int_equal(getsockname(u->lfd, (struct sockaddr *)&a, &len), 0);
	u->port = ntohs(a.sin_port);
	pthread_create(&u->thread, NULL, up_main, u);
	g_up = u;
	return u;
}

static void up_stop(struct up *u)
{
	shutdown(u->lfd, SHUT_RDWR);
	close(u->lfd);
	pthread_join(u->thread, NULL);
	g_up = NULL;
}

/* The names the tests allow (an allow-list glob needs two whole labels after its '*': "*.test"
 * is refused by mitm_allow_host_check). */
#define PW_TEST_NAMES "web.test", "api.test", "bad.test", "b.test", "private.test"
#define PW_N_TEST_NAMES 5

/* ---- the hooks: *.test names -> 198.51.100.10 (private.test -> 10.99.0.10); connects to any
 * non-loopback address go to the upstream on loopback ---- */
static int hook_resolve(const char *name, struct in_addr *out, int max)
{
	(void)max;
	if (!strcmp(name, "private.test"))
		return inet_pton(AF_INET, PRIV_IP, out) == 1 ? 1 : -EINVAL;
	if (strlen(name) > 5 && !strcmp(name + strlen(name) - 5, ".test"))
		return inet_pton(AF_INET, WEB_IP, out) == 1 ? 1 : -EINVAL;
	return -ENOENT;
}

static uint16_t g_last_port;

static void hook_dial(struct sockaddr_in *to)
{
	if (ntohl(to->sin_addr.s_addr) >> 24 == 127)
		return;
	/* never the real address: after up_stop, the stopped upstream's port (refused) */
	if (g_up)
		g_last_port = g_up->port;
	to->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to->sin_port = htons(g_last_port ? g_last_port : 1);
}

/* ---- the guest and the loop ---- */
struct pw {
	struct mitm *m;
	struct mitm_intercept ic;
	int events;
	char last_event[512];
};

static void on_event(void *arg, const struct mitm_http_event *ev)
{
	struct pw *w = arg;

	w->events++;
	snprintf(w->last_event, sizeof(w->last_event), "%s %s %s %d blocked=%d reason=%s rule=%s secrets=%zu",
		 ev->method, ev->host, ev->path, ev->status, ev->blocked, ev->reason, ev->rule, ev->n_secrets);
}

static void pw_round(struct pw *w, int timeout_ms)
{
	struct pollfd *fds;
	size_t n;
	int t = timeout_ms;

	mitm_poll_fill(w->m, &fds, &n, &t);
	int r = poll(fds, n, t);
	mitm_poll_done(w->m, fds, r < 0 ? 0 : n);
}

/* A guest connection to dst (dotted:port): returns the test's end (blocking off). */
static int pw_connect(struct pw *w, const char *ip, uint16_t port)
{
	int sv[2];
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(40000),
				   .sin_addr.s_addr = htonl(0x0a00020f) };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };

	assert_int_equal(inet_pton(AF_INET, ip, &dst.sin_addr), 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(mitm_connect_check(w->m, (struct sockaddr *)&dst), 0);
	mitm_flow(w->m, sv[1], &src, &dst);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	return sv[0];
}

static void pw_send(struct pw *w, int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t r = send(fd, s, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EAGAIN) {
			pw_round(w, 10);
			continue;
		}
		assert_true(r > 0);
		s += r;
		n -= (size_t)r;
	}
}

/* Reads until cond(buf, len) holds, EOF, or timeout. Returns len; *eof set if the peer closed. */
static size_t pw_read_until(struct pw *w, int fd, char *buf, size_t cap, int timeout_ms,
			    bool (*cond)(const char *, size_t), bool *eof)
{
	int64_t end = ml_now_ms() + timeout_ms;
	size_t len = 0;

	*eof = false;
	while (ml_now_ms() < end) {
		ssize_t r = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);

		if (r > 0) {
			len += (size_t)r;
			buf[len] = '\0';
			if (cond && cond(buf, len))
				break;
			continue;
		}
		if (r == 0 || (r < 0 && errno != EAGAIN)) {
			*eof = true;
			break;
		}
		pw_round(w, 5);
	}
	buf[len] = '\0';
	return len;
}

/* One complete HTTP/1.1 response at the start of buf (by Content-Length or chunked). */
static bool response_complete(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *cl;

	while (end && !strncmp(buf, "HTTP/1.1 1", 10) && strncmp(buf, "HTTP/1.1 101", 12)) {
		size_t skip = (size_t)(end + 4 - buf);   /* an interim response: look past it */

		buf += skip;
		len -= skip;
		end = memmem(buf, len, "\r\n\r\n", 4);
	}
	if (!end)
		return false;
	cl = strcasestr(buf, "Content-Length:");
	if (cl && cl < end)
		return len >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10);
	if (strcasestr(buf, "Transfer-Encoding: chunked"))
		return memmem(end, len - (size_t)(end - buf), "\r\n0\r\n\r\n", 7) != NULL;
	return !strncmp(buf, "HTTP/1.1 101", 12) || !strncmp(buf, "HTTP/1.1 204", 12) ||
	       !strncmp(buf, "HTTP/1.1 304", 12);
}

static bool has_two_responses(const char *buf, size_t len)
{
	const char *second = memmem(buf + 1, len - 1, "HTTP/1.1 ", 9);

	return second && response_complete(second, len - (size_t)(second - buf));
}

static size_t pw_exchange(struct pw *w, int fd, const char *req, char *buf, size_t cap)
{
	bool eof;

	pw_send(w, fd, req, strlen(req));
	return pw_read_until(w, fd, buf, cap, 5000, response_complete, &eof);
}

static struct pw *pw_new(char **allow, size_t n_allow, const struct mitm_secret *sec, size_t n_sec)
{
	struct pw *w = calloc(1, sizeof(*w));
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = n_allow,
				 .block_private_ips = true, .connect_timeout_ms = 2000 };
	struct ml_err e;

	assert_non_null(w);
	w->ic = (struct mitm_intercept){ .secrets = sec, .n_secrets = n_sec, .event = on_event,
					 .event_arg = w, .response_timeout_ms = 1500,
					 .head_timeout_ms = 1000, .keepalive_ms = 5000 };
	c.intercept = &w->ic;
	mitm_resolve_hook = hook_resolve;
	mitm_dial_hook = hook_dial;
	if (mitm_new(&c, &w->m, &e) < 0)
		fail_msg("mitm_new: %s", e.msg);
	return w;
}

static void pw_free(struct pw *w)
{
	mitm_free(w->m);
	free(w);
}

#endif
