/* cli/ctlclient.h - reaching a running VM from another process: find its record, connect to
 * its control socket (<state dir>/exec.sock, served by the VM's owner), and make JSON-RPC
 * calls there (the protocol of rpc/PROTOCOL.md). Messages are upstream's. */
#ifndef ML_CLI_CTLCLIENT_H
#define ML_CLI_CTLCLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "base/err.h"

/* Connects to VM id's control socket: "VM not found <id>: VM <id> not found", "VM <id> is not
 * running (status: <s>)", "exec socket not found for <id> (was it started with --rm=false?)".
 * Returns the connected fd (blocking, CLOEXEC) or -errno. */
int ctlclient_connect(const char *id, struct ml_err *e);
/* One request, waiting for its response (notifications in between are ignored). *result gets
 * the result object (caller decrefs). A JSON-RPC error becomes e (code -EIO, its message). */
int ctlclient_call(int fd, const char *method, json_t *params /* stolen */, json_t **result, struct ml_err *e);

/* Words joined into one `sh -c` string the way upstream quotes them (go-shellquote Join):
 * a word with whitespace is single-quoted (' as \'), else shell metacharacters and a leading ~
 * are backslash-escaped. malloc'd. */
char *shell_join(char *const *words, size_t n);

#endif
