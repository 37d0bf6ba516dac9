/* rpc/ctlsock.c - a VM's control socket, <state dir>/exec.sock: served by whoever owns the VM
 * (a `run`, a detached child, an rpc server), so `matchlock exec`, `port-forward` and
 * `allow-list` from any shell of the same user reach it. Each accepted client is one more
 * connection of the JSON-RPC server (the same protocol as `matchlock rpc`, minus create/close;
 * rpc/PROTOCOL.md). Only the VM's user may connect: the socket is 0600 inside the 0700 state dir,
 * and every peer's uid is checked (SO_PEERCRED) before a byte is read. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "rpc/server_internal.h"

static void on_accept(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)rev;
	struct rpc_server *s = arg;
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			return;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid()) {
			ml_warn("control socket: refused a client of uid %d", len == sizeof(cred) ? (int)cred.uid : -1);
			close(c);
			continue;
		}
		struct ml_err e = { 0 };
		if (rpc_server_add_conn(s, c, c, false, &e) < 0) {
			ml_warn("control socket: %s", e.msg);
			close(c);
		}
	}
}

int rpc_server_listen(struct rpc_server *s, const char *state_dir, struct ml_err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/exec.sock", state_dir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return ml_err_set(e, -ENAMETOOLONG, "control socket path too long: %s/exec.sock", state_dir);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ml_err_set(e, -errno, "control socket: %s", strerror(errno));
	unlink(sa.sun_path); /* a leftover of a dead owner is never trusted */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 64) < 0)
		return ml_err_set(e, -errno, "control socket %s: %s", sa.sun_path, strerror(errno));
	s->listen_fd = steal_fd(&fd);
	s->listen_path = strdup(sa.sun_path);
	ml_loop_watch(s->o.loop, s->listen_fd, POLLIN, on_accept, s);
	return 0;
}

void rpc_server_unlisten(struct rpc_server *s)
{
	if (s->listen_fd < 0)
		return;
	ml_loop_unwatch(s->o.loop, s->listen_fd);
	close(s->listen_fd);
	s->listen_fd = -1;
	if (s->listen_path)
		unlink(s->listen_path);
	free(s->listen_path);
	s->listen_path = NULL;
}
