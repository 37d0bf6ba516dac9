/* rpc/server.h - the JSON-RPC server of one VM: `matchlock rpc` (the SDKs' server on stdio)
 * and the per-VM control socket (exec.sock) that `matchlock exec`, `port-forward` and
 * `allow-list` reach from other shells. One protocol, one dispatcher, many connections.
 *
 * The wire is JSON-RPC 2.0 over newline-delimited JSON, exactly as the matchlock SDKs speak it
 * (rpc/PROTOCOL.md: framing, method classes, error codes, every method). Requests of one
 * connection are dispatched in arrival order by class: `cancel` at once; `create`/`close`
 * after every in-flight request of that connection finished (barrier); stdin messages in
 * order; everything else concurrently, each answered when it is done. */
#ifndef ML_RPC_SERVER_H
#define ML_RPC_SERVER_H

#include <stdbool.h>

#include "base/err.h"
#include "base/loop.h"
#include "rpc/sandbox.h"
#include "rpc/settings.h"

/* How execs of a VM run when the request does not say: what `run` decided for its own
 * command (image env merged with -e, workdir, user, privileged), or what `create` computed. */
struct rpc_exec_defaults {
	char **env;          /* NULL-terminated KEY=VALUE: the whole environment */
	const char *cwd;     /* NULL: "/" */
	const char *user;    /* NULL: root */
	bool privileged;
};

struct rpc_server;
struct rpc_server_opts {
	const struct ml_settings *settings;
	struct ml_loop *loop;
	/* The primary connection (stdio) ended and the VM is closed: the process may exit. */
	void (*done)(void *arg);
	void *arg;
};

int rpc_server_new(const struct rpc_server_opts *o, struct rpc_server **out, struct ml_err *e);
/* Frees every connection and, if the server created it, closes its VM. NULL-safe. */
void rpc_server_free(struct rpc_server *s);

/* Serves a connection. primary: the SDK's stdio: it may `create` and `close`, and its end
 * closes the VM. Others (control socket clients) use the current VM; when they go away their
 * in-flight requests are cancelled (the guest commands they started are killed). */
int rpc_server_add_conn(struct rpc_server *s, int in_fd, int out_fd, bool primary, struct ml_err *e);

/* Serves a VM that someone else created (a `run` process) on the control socket. d is copied. */
int rpc_server_attach(struct rpc_server *s, struct sandbox *sb, const struct rpc_exec_defaults *d,
		      struct ml_err *e);
/* The forwards the VM already has (run -p, bound by the sandbox): kept whenever clients add
 * or replace their own. */
int rpc_server_set_base_forwards(struct rpc_server *s, const struct sandbox_publish *p, size_t n,
				 struct ml_err *e);
/* Before the attached VM is destroyed by its creator: stops serving it (socket closed, requests
 * cancelled, no more control-channel calls). */
void rpc_server_detach(struct rpc_server *s);
/* Serves the VM's control socket <state_dir>/exec.sock (ctlsock.c): processes of the same
 * user connect and speak this protocol (without create/close). Unlinked by unlisten/free. */
int rpc_server_listen(struct rpc_server *s, const char *state_dir, struct ml_err *e);
void rpc_server_unlisten(struct rpc_server *s);
/* Cancels everything in flight and closes the VM the server created (SIGINT/SIGTERM). */
void rpc_server_shutdown(struct rpc_server *s);

#endif
