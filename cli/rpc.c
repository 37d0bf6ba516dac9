/* cli/rpc.c - `matchlock rpc`: the JSON-RPC server the SDKs spawn, on stdin/stdout (nothing
 * but protocol lines on stdout; diagnostics on stderr). One process, at most one VM. It ends
 * after `close`, at EOF on stdin (closing the VM: nobody else would), or on SIGINT/SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/proc.h"
#include "base/cleanup.h"
#include "cli/cmds.h"
#include "rpc/server.h"

struct rpc_cli {
	struct ml_loop *loop;
	struct rpc_server *srv;
	bool done, signaled;
};

static void on_done(void *arg)
{
	struct rpc_cli *c = arg;
	c->done = true;
	ml_loop_stop(c->loop);
}

static void on_signal(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)rev;
	struct rpc_cli *c = arg;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		c->signaled = true;
	if (c->signaled)
		rpc_server_shutdown(c->srv); /* as if the client went away: the VM is closed */
}

static int serve(struct rpc_cli *c, struct ml_err *e)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	_cleanup_close_ int sfd = ml_signalfd(sigs, 3);
	if (sfd < 0)
		return ml_err_set(e, sfd, "signalfd: %s", strerror(-sfd));
	struct rpc_server_opts o = { .settings = cli_settings(), .loop = c->loop, .done = on_done, .arg = c };
	int r = rpc_server_new(&o, &c->srv, e);
	if (r == 0)
		r = rpc_server_add_conn(c->srv, STDIN_FILENO, STDOUT_FILENO, true, e);
	if (r < 0)
		return r;
	ml_loop_watch(c->loop, sfd, POLLIN, on_signal, c);
	while (!c->done)
		if ((r = ml_loop_run(c->loop)) < 0)
			return ml_err_set(e, r, "event loop: %s", strerror(-r));
	ml_loop_unwatch(c->loop, sfd);
	return 0;
}

int cmd_rpc(int argc, char **argv, struct ml_err *e)
{
	(void)argv;
	if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
		printf("JSON-RPC server on stdin/stdout for the matchlock SDKs (one VM per process).\n\n"
		       "Usage:\n  matchlock rpc\n");
		return 0;
	}
	if (argc > 0)
		return ml_err_set(e, -EINVAL, "unknown command \"%s\" for \"matchlock rpc\"", argv[0]);
	int in_fl = fcntl(STDIN_FILENO, F_GETFL), out_fl = fcntl(STDOUT_FILENO, F_GETFL);
	struct rpc_cli c = { 0 };
	int r = ml_loop_new(&c.loop) < 0 ? ml_err_set(e, -ENOMEM, "out of memory") : serve(&c, e);
	rpc_server_free(c.srv);
	ml_loop_free(c.loop);
	/* stdin/stdout may be a terminal shared with the shell: give its flags back */
	if (in_fl >= 0)
		fcntl(STDIN_FILENO, F_SETFL, in_fl);
	if (out_fl >= 0)
		fcntl(STDOUT_FILENO, F_SETFL, out_fl);
	return r;
}
