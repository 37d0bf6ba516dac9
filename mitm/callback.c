/* mitm/callback.c - the SDK hook callback exchange over a Unix socket: one connection
 * and one JSON line each way per invocation.
 * A new connection per invocation; the whole dial + write + read shares one deadline. Runs on
 * a worker thread, so it may block in poll(), but never past the deadline or a stop request. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/loop.h"
#include "mitm/callback.h"

/* Waits for ev on fd; -ETIMEDOUT past the deadline (0: none), -ECANCELED on a stop. */
static int wait_for(int fd, short ev, int64_t deadline, int stopfd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = ev }, { .fd = stopfd, .events = POLLIN } };
		int timeout = -1, r;

		if (deadline) {
			int64_t left = deadline - ml_now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left > 60000 ? 60000 : (int)left;
		}
		r = poll(p, stopfd >= 0 ? 2 : 1, timeout);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && stopfd >= 0 && p[1].revents)
			return -ECANCELED;
		if (r > 0 && p[0].revents)
			return 0;
	}
}

static int dial(const char *path, int64_t deadline, int stopfd, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN)
			return -errno;
		if ((r = wait_for(fd, POLLOUT, deadline, stopfd)) < 0)
			return r;
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
			return err ? -err : -errno;
	}
	*out = steal_fd(&fd);
	return 0;
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline, int stopfd)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		int r;

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((r = wait_for(fd, POLLOUT, deadline, stopfd)) < 0)
				return r;
			continue;
		}
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_line(int fd, int64_t deadline, int stopfd, char **reply)
{
	size_t len = 0, cap = 4096;
	_cleanup_free_ char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;
		int r;

		if (len + 1 >= cap) {
			char *nb;

			if (cap >= CALLBACK_REPLY_MAX)
				return -EMSGSIZE;
			if (!(nb = realloc(buf, cap * 2)))
				return -ENOMEM;
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((r = wait_for(fd, POLLIN, deadline, stopfd)) < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0 || memchr(buf + len, '\n', (size_t)n)) {
			len += (size_t)n;
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	*reply = buf;
	buf = NULL;
	return 0;
}

int callback_exchange(const char *path, const char *request, unsigned timeout_ms, int stopfd,
		      char **reply)
{
	int64_t deadline = timeout_ms ? ml_now_ms() + timeout_ms : 0;
	_cleanup_close_ int fd = -1;
	int r;

	*reply = NULL;
	if ((r = dial(path, deadline, stopfd, &fd)) < 0 ||
	    (r = send_all(fd, request, strlen(request), deadline, stopfd)) < 0 ||
	    (r = send_all(fd, "\n", 1, deadline, stopfd)) < 0)
		return r;
	return read_line(fd, deadline, stopfd, reply);
}
