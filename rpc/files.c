/* rpc/files.c - write_file, read_file, list_files: any guest path, through the agent's file
 * operations (agent/PROTOCOL.md, EXF_FILEOP), which ride on the exec engine (exec.c): the
 * content travels as the command's stdin or stdout, with the same flow control. Errors are the
 * agent's one line, prefixed "guest file operation: ". */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/b64.h"
#include "base/buf.h"
#include "base/cleanup.h"
#include "rpc/exec_internal.h"

/* Go's os.FileMode bits for a POSIX st_mode (the SDKs pass them through). */
static uint32_t go_file_mode(uint32_t m)
{
	uint32_t g = m & 0777;
	switch (m & 0170000) {
	case 0040000: g |= 0x80000000u; break;           /* dir */
	case 0120000: g |= 0x08000000u; break;           /* symlink */
	case 0010000: g |= 0x02000000u; break;           /* named pipe */
	case 0140000: g |= 0x01000000u; break;           /* socket */
	case 0060000: g |= 0x04000000u; break;           /* block device */
	case 0020000: g |= 0x04000000u | 0x00200000u; break; /* char device */
	default: break;
	}
	if (m & 04000)
		g |= 0x00800000u;
	if (m & 02000)
		g |= 0x00400000u;
	if (m & 01000)
		g |= 0x00100000u;
	return g;
}

static bool file_ready(struct rpc_req *r)
{
	struct rpc_server *s = r->cl->srv;
	if (s->vm.sb && s->vm.ready)
		return true;
	rpc_reply_error(r, RPC_VM_FAILED, "VM not created");
	return false;
}

/* The agent's error line (stderr), or the exit status when it said nothing. */
static bool file_failed(struct exec_op *op, int code, const char *msg, struct rpc_req *r)
{
	if (code) {
		rpc_reply_error(r, code, "%s%s", code == RPC_FILE_FAILED ? "guest file operation: " : "", msg);
		return true;
	}
	if (op->code == 0)
		return false;
	struct out_buf *e = &op->out[2];
	int n = (int)(e->len > 512 ? 512 : e->len);
	char line[600];
	snprintf(line, sizeof(line), "%.*s", n, e->buf ? (const char *)e->buf : "");
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	rpc_reply_error(r, RPC_FILE_FAILED, "guest file operation: %s", line[0] ? line : "failed");
	return true;
}

/* ---- paths under the workspace: through vfs/, so hooks and file events see them ---- */
enum ws_op { WS_WRITE, WS_READ, WS_LIST };

struct ws_job {
	struct rpc_req *r;
	struct vfs *v;
	enum ws_op op;
	char *path;
	uint8_t *data;           /* write: the content; read: the result */
	size_t len;
	uint32_t mode;
	struct vfs_file_info *files;
	size_t n_files;
	int rc;
	struct ml_err e;
};

static void ws_run(void *arg)
{
	struct ws_job *j = arg;
	if (j->op == WS_WRITE)
		j->rc = vfs_write_file(j->v, j->path, j->data, j->len, j->mode, &j->e);
	else if (j->op == WS_READ)
		j->rc = vfs_read_file(j->v, j->path, &j->data, &j->len, &j->e);
	else
		j->rc = vfs_list_files(j->v, j->path, &j->files, &j->n_files, &j->e);
}

static json_t *ws_listing(const struct ws_job *j)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < j->n_files; i++)
		json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:s, s:b}", "name", j->files[i].name,
						   "size", (json_int_t)j->files[i].size,
						   "mode", (json_int_t)vfs_go_mode(j->files[i].mode),
						   "mod_time", "0001-01-01T00:00:00Z", "is_dir", j->files[i].is_dir));
	return a;
}

static void ws_done(void *arg)
{
	struct ws_job *j = arg;
	if (j->rc < 0) {
		rpc_reply_error(j->r, RPC_FILE_FAILED, "guest file operation: %s", j->e.msg);
	} else if (j->op == WS_WRITE) {
		rpc_reply(j->r, json_object());
	} else if (j->op == WS_READ) {
		_cleanup_free_ char *b = ml_b64_encode(j->data ? j->data : (uint8_t *)"", j->len);
		rpc_reply(j->r, b ? json_pack("{s:s}", "content", b) : NULL);
	} else {
		rpc_reply(j->r, json_pack("{s:o}", "files", ws_listing(j)));
	}
	vfs_file_infos_free(j->files, j->n_files);
	free(j->data);
	free(j->path);
	free(j);
}

/* true if the path is the workspace's: then r is answered from there (data is taken). */
static bool via_workspace(struct rpc_req *r, enum ws_op op, const char *path, uint8_t *data, size_t len,
			  uint32_t mode)
{
	struct vfs *v = sandbox_vfs(r->cl->srv->vm.sb);
	if (!v || !vfs_covers(v, path))
		return false;
	struct ws_job *j = calloc(1, sizeof(*j));
	if (!j || !(j->path = strdup(path))) {
		free(j);
		free(data);
		rpc_reply_error(r, RPC_FILE_FAILED, "out of memory");
		return true;
	}
	*j = (struct ws_job){ .r = r, .v = v, .op = op, .path = j->path, .data = data, .len = len, .mode = mode };
	if (rpc_offload(r->cl->srv, ws_run, ws_done, j) < 0) {
		free(j->path);
		free(j->data);
		free(j);
		rpc_reply_error(r, RPC_FILE_FAILED, "guest file operation: cannot start a worker thread");
	}
	return true;
}

/* Runs the agent's file operation argv for r; done answers it. */
static void start_fileop(struct rpc_req *r, char **argv, bool with_stdin, uint8_t *stdin_data, size_t stdin_len,
			 void (*done)(struct exec_op *, struct rpc_req *, int, const char *))
{
	struct exec_op *op = exec_op_new(r->cl->srv, r, EXEC_BUFFERED);
	if (!op) {
		free(stdin_data);
		rpc_reply_error(r, RPC_FILE_FAILED, "out of memory");
		return;
	}
	op->fileop = true;
	op->on_done = done;
	if (with_stdin) {
		op->stdin_data = stdin_data;
		op->stdin_len = stdin_len;
		op->in_eof = true;
	}
	static char *no_env[] = { NULL };
	struct proto_exec x = { .argv = argv, .env = no_env, .cwd = "/",
				.flags = EXF_FILEOP | EXF_PRIVILEGED | (op->in_eof ? EXF_STDIN : 0) };
	exec_op_start(op, &x);
}

static bool path_param(struct rpc_req *r, const char **path)
{
	struct ml_err e = { 0 };
	if (!json_is_object(r->params) || rpc_param_str(r->params, "path", true, path, &e) < 0) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "%s", e.msg[0] ? e.msg : "path is required");
		return false;
	}
	return true;
}

/* ---- write_file ---- */
static void write_done(struct exec_op *op, struct rpc_req *r, int code, const char *msg)
{
	if (!file_failed(op, code, msg, r))
		rpc_reply(r, json_object());
}

void rpc_m_write_file(struct rpc_req *r)
{
	const char *path, *content;
	uint64_t mode = 0;
	struct ml_err e = { 0 };
	if (!file_ready(r) || !path_param(r, &path))
		return;
	if (rpc_param_str(r->params, "content", false, &content, &e) < 0 ||
	    rpc_param_u64(r->params, "mode", false, &mode, &e) < 0) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "%s", e.msg);
		return;
	}
	uint8_t *data = NULL;
	size_t n = 0;
	if (rpc_b64_decode(content ? content : "", content ? strlen(content) : 0, &data, &n) < 0) {
		rpc_reply_error(r, RPC_INVALID_PARAMS, "invalid base64 content");
		return;
	}
	if (via_workspace(r, WS_WRITE, path, data, n, (uint32_t)(mode ? mode & 07777 : 0644)))
		return;
	char mode_s[16];
	snprintf(mode_s, sizeof(mode_s), "%o", (unsigned)(mode ? mode & 07777 : 0644));
	char *argv[] = { "write", (char *)path, mode_s, NULL };
	start_fileop(r, argv, true, data, n, write_done);
}

/* ---- read_file ---- */
static void read_done(struct exec_op *op, struct rpc_req *r, int code, const char *msg)
{
	if (file_failed(op, code, msg, r))
		return;
	_cleanup_free_ char *b64 = ml_b64_encode(op->out[1].buf ? op->out[1].buf : (uint8_t *)"", op->out[1].len);
	rpc_reply(r, b64 ? json_pack("{s:s}", "content", b64) : NULL);
}

void rpc_m_read_file(struct rpc_req *r)
{
	const char *path;
	if (!file_ready(r) || !path_param(r, &path))
		return;
	if (via_workspace(r, WS_READ, path, NULL, 0, 0))
		return;
	char *argv[] = { "read", (char *)path, NULL };
	start_fileop(r, argv, false, NULL, 0, read_done);
}

/* ---- list_files ---- */
static int cmp_name(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
		      json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

/* A guest file name as a JSON string: invalid UTF-8 bytes become U+FFFD, as Go's encoder
 * does, so one odd name cannot make the whole listing fail. */
static json_t *name_json(const char *p, size_t n)
{
	char out[NAME_MAX * 3 + 1];
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned char ch = (unsigned char)p[i];
		size_t len = ch < 0x80 ? 1 : (ch & 0xe0) == 0xc0 ? 2 : (ch & 0xf0) == 0xe0 ? 3 : (ch & 0xf8) == 0xf0 ? 4 : 0;
		bool good = len > 0 && i + len <= n;
		for (size_t k = 1; good && k < len; k++)
			good = ((unsigned char)p[i + k] & 0xc0) == 0x80;
		json_t *probe = good && len > 1 ? json_stringn(p + i, len) : NULL;
		if (len > 1 && !probe)
			good = false; /* overlong forms and surrogates: jansson knows them */
		json_decref(probe);
		if (good) {
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	return json_stringn(out, o);
}

static json_t *entry_json(struct cursor *c)
{
	uint16_t nl = cur_u16(c);
	const char *name = cur_take(c, nl);
	uint64_t size = cur_u64(c);
	uint32_t mode = cur_u32(c);
	int64_t mtime = (int64_t)cur_u64(c);
	/* NAME_MAX bounds a Linux file name; name_json's buffer is sized by it */
	if (c->bad || nl == 0 || nl > NAME_MAX || memchr(name, '\0', nl) || memchr(name, '/', nl))
		return NULL;
	char when[32];
	struct tm tm;
	time_t t = (time_t)mtime;
	if (!gmtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(when, sizeof(when), "0001-01-01T00:00:00Z");
	json_t *o = json_pack("{s:o, s:I, s:I, s:s, s:b}", "name", name_json(name, nl), "size", (json_int_t)size,
			      "mode", (json_int_t)go_file_mode(mode), "mod_time", when, "is_dir",
			      (mode & 0170000) == 0040000);
	return o;
}

json_t *rpc_listing_decode(const uint8_t *data, size_t len)
{
	/* the records come from the guest: every length is checked before use */
	struct cursor c = { .b = { data, len } };
	json_t *files = json_array();
	while (files && cur_left(&c) > 0) {
		json_t *f = entry_json(&c);
		if (!f) {
			json_decref(files);
			return NULL;
		}
		json_array_append_new(files, f);
	}
	size_t n = json_array_size(files);
	json_t **v = calloc(n + 1, sizeof(*v));
	if (!v) {
		json_decref(files);
		return NULL;
	}
	for (size_t i = 0; v && i < n; i++)
		v[i] = json_incref(json_array_get(files, i));
	if (v)
		qsort(v, n, sizeof(*v), cmp_name);
	json_array_clear(files);
	for (size_t i = 0; v && i < n; i++)
		json_array_append_new(files, v[i]);
	free(v);
	return files;
}

static void list_done(struct exec_op *op, struct rpc_req *r, int code, const char *msg)
{
	if (file_failed(op, code, msg, r))
		return;
	json_t *files = rpc_listing_decode(op->out[1].buf, op->out[1].len);
	if (!files) {
		rpc_reply_error(r, RPC_FILE_FAILED, "guest file operation: malformed directory listing");
		return;
	}
	rpc_reply(r, json_pack("{s:o}", "files", files));
}

void rpc_m_list_files(struct rpc_req *r)
{
	const char *path;
	if (!file_ready(r) || !path_param(r, &path))
		return;
	if (via_workspace(r, WS_LIST, path, NULL, 0, 0))
		return;
	char *argv[] = { "list", (char *)path, NULL };
	start_fileop(r, argv, false, NULL, 0, list_done);
}
