/* cli/ctlclient.c - see ctlclient.h. */
#include "cli/ctlclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "cli/cmds.h"
#include "rpc/vmstate.h"

int ctlclient_connect(const char *id, struct ml_err *e)
{
	struct vm_record rec;
	int r = vmstate_load(cli_settings()->state_dir, id, &rec, e);
	if (r < 0)
		return ml_err_set(e, r, "VM not found %s: VM %s not found", id, id);
	if (strcmp(rec.status, "running")) {
		ml_err_set(e, -ESRCH, "VM %s is not running (status: %s)", id, rec.status);
		vm_record_free(&rec);
		return -ESRCH;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/exec.sock", rec.dir);
	vm_record_free(&rec);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return ml_err_set(e, -ENAMETOOLONG, "exec socket path too long for %s", id);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ml_err_set(e, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		close(fd);
		/* ENOENT: no socket; ECONNREFUSED: a dead owner's file: never trusted */
		return ml_err_set(e, -err, "exec socket not found for %s (was it started with --rm=false?)", id);
	}
	return fd;
}

static int send_line(int fd, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	s[n] = '\n'; /* json_dumps leaves room: its NUL */
	size_t off = 0;
	while (off < n + 1) {
		ssize_t w = write(fd, s + off, n + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			free(s);
			return -EPIPE;
		}
		off += (size_t)w;
	}
	free(s);
	return 0;
}

/* Reads one line (up to 64 MiB) from fd into a malloc'd string; NULL at EOF or error. */
static char *read_line(int fd, char **buf, size_t *len, size_t *cap)
{
	for (;;) {
		char *nl = *len ? memchr(*buf, '\n', *len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - *buf);
			char *line = strndup(*buf, n);
			memmove(*buf, nl + 1, *len - n - 1);
			*len -= n + 1;
			return line;
		}
		if (*cap - *len < 65536) {
			if (*cap > (64u << 20))
				return NULL;
			char *nb = realloc(*buf, *cap ? *cap * 2 : 131072);
			if (!nb)
				return NULL;
			*buf = nb;
			*cap = *cap ? *cap * 2 : 131072;
		}
		ssize_t r = read(fd, *buf + *len, *cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		*len += (size_t)r;
	}
}

int ctlclient_call(int fd, const char *method, json_t *params, json_t **result, struct ml_err *e)
{
	static json_int_t next_id = 1;
	json_int_t id = next_id++;
	json_t *msg = json_pack("{s:s, s:s, s:o, s:I}", "jsonrpc", "2.0", "method", method, "params",
				params ? params : json_object(), "id", id);
	if (send_line(fd, msg) < 0)
		return ml_err_set(e, -EPIPE, "the VM's owner closed its control socket");
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		_cleanup_free_ char *line = read_line(fd, &buf, &len, &cap);
		if (!line)
			return ml_err_set(e, -EPIPE, "the VM's owner closed its control socket");
		json_t *m = json_loads(line, 0, NULL);
		if (!m || json_integer_value(json_object_get(m, "id")) != id || !json_object_get(m, "id")) {
			json_decref(m);
			continue;
		}
		json_t *err = json_object_get(m, "error");
		if (err) {
			ml_err_set(e, -EIO, "%s", json_string_value(json_object_get(err, "message")) ?: "failed");
			json_decref(m);
			return -EIO;
		}
		*result = json_incref(json_object_get(m, "result"));
		json_decref(m);
		return 0;
	}
}

char *shell_join(char *const *words, size_t n)
{
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap += strlen(words[i]) * 4 + 3;
	char *out = malloc(cap), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *w = words[i];
		if (!*w)
			continue; /* upstream's quirk: an empty word produces nothing */
		if (o != out)
			*o++ = ' ';
		if (strpbrk(w, " \t\n")) {
			*o++ = '\'';
			for (const char *p = w; *p; p++) {
				if (*p == '\'') {
					memcpy(o, "'\\''", 4);
					o += 4;
				} else {
					*o++ = *p;
				}
			}
			*o++ = '\'';
			continue;
		}
		for (const char *p = w; *p; p++) {
			if (strchr("\\'\"`${[|&;<>()*?!", *p) || (p == w && *p == '~'))
				*o++ = '\\';
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}
