/* agent/proto.c - frame reader/writer and TLV codecs of the control protocol (see PROTOCOL.md).
 * Built into both the host and the static guest agent. */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../base/buf.h"

#define PROTO_MAX_ELEMS 65536u /* argv or env entries in one exec */

static bool type_known(uint16_t t)
{
	return (t >= PT_CONFIG && t <= PT_SHUTDOWN) || (t >= PT_HELLO && t <= PT_ERROR) || t == PT_CREDIT;
}

void proto_reader_init(struct proto_reader *r) { memset(r, 0, sizeof(*r)); }
void proto_reader_free(struct proto_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

uint8_t *proto_reader_space(struct proto_reader *r, size_t *room)
{
	/* Compact first: consumed bytes at the front are dead once their frame was handed out. */
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	size_t want = 64u << 10;
	if (r->cap - r->len < want) {
		size_t ncap = r->cap ? r->cap : want;
		while (ncap - r->len < want)
			ncap *= 2;
		uint8_t *n = realloc(r->buf, ncap);
		if (!n) {
			*room = 0;
			return NULL;
		}
		r->buf = n;
		r->cap = ncap;
	}
	*room = r->cap - r->len;
	return r->buf + r->len;
}

void proto_reader_commit(struct proto_reader *r, size_t n) { r->len += n; }

int proto_reader_next(struct proto_reader *r, struct proto_frame *f)
{
	struct buf b = { r->buf + r->off, r->len - r->off };
	struct cursor c = { b, 0, 0 };
	uint32_t len = cur_u32(&c);
	uint16_t type = cur_u16(&c);
	uint16_t flags = cur_u16(&c);
	uint32_t stream = cur_u32(&c);
	if (c.bad)
		return 0;
	if (len > PROTO_MAX_PAYLOAD || !type_known(type) || flags != 0)
		return -EPROTO;
	const uint8_t *payload = cur_take(&c, len);
	if (!payload)
		return 0;
	f->type = type;
	f->flags = flags;
	f->stream = stream;
	f->payload = payload;
	f->len = len;
	r->off += PROTO_HDR_LEN + len;
	return 1;
}

void proto_msg_init(struct proto_msg *m) { memset(m, 0, sizeof(*m)); }
void proto_msg_free(struct proto_msg *m)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
}

static int msg_reserve(struct proto_msg *m, size_t n)
{
	if (m->cap - m->len >= n)
		return 0;
	size_t ncap = m->cap ? m->cap : 256;
	while (ncap - m->len < n) {
		if (ncap > (SIZE_MAX >> 1))
			return -ENOMEM;
		ncap *= 2;
	}
	uint8_t *d = realloc(m->data, ncap);
	if (!d)
		return -ENOMEM;
	m->data = d;
	m->cap = ncap;
	return 0;
}

int proto_put_bytes(struct proto_msg *m, const void *p, size_t n)
{
	int r = msg_reserve(m, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(m->data + m->len, p, n);
	m->len += n;
	return 0;
}

int proto_put_u16(struct proto_msg *m, uint16_t v)
{
	uint8_t b[2];
	put_u16(b, v);
	return proto_put_bytes(m, b, 2);
}
int proto_put_u32(struct proto_msg *m, uint32_t v)
{
	uint8_t b[4];
	put_u32(b, v);
	return proto_put_bytes(m, b, 4);
}
int proto_put_u64(struct proto_msg *m, uint64_t v)
{
	uint8_t b[8];
	put_u64(b, v);
	return proto_put_bytes(m, b, 8);
}

int proto_msg_begin(struct proto_msg *m, uint16_t type, uint32_t stream)
{
	m->frame_start = m->len;
	uint8_t h[PROTO_HDR_LEN];
	put_u32(h, 0);
	put_u16(h + 4, type);
	put_u16(h + 6, 0);
	put_u32(h + 8, stream);
	return proto_put_bytes(m, h, sizeof(h));
}

int proto_msg_end(struct proto_msg *m)
{
	size_t plen = m->len - m->frame_start - PROTO_HDR_LEN;
	if (plen > PROTO_MAX_PAYLOAD) {
		m->len = m->frame_start; /* drop the half-built frame */
		return -EMSGSIZE;
	}
	put_u32(m->data + m->frame_start, (uint32_t)plen);
	return 0;
}

int proto_msg_frame(struct proto_msg *m, uint16_t type, uint32_t stream, const void *p, size_t n)
{
	int r = proto_msg_begin(m, type, stream);
	if (r == 0)
		r = proto_put_bytes(m, p, n);
	if (r == 0)
		r = proto_msg_end(m);
	return r;
}

int proto_put_tlv(struct proto_msg *m, uint16_t tag, const void *p, uint32_t n)
{
	int r = proto_put_u16(m, tag);
	if (r == 0)
		r = proto_put_u32(m, n);
	if (r == 0)
		r = proto_put_bytes(m, p, n);
	return r;
}
int proto_put_tlv_str(struct proto_msg *m, uint16_t tag, const char *s)
{
	return proto_put_tlv(m, tag, s, (uint32_t)strlen(s));
}
int proto_put_tlv_u32(struct proto_msg *m, uint16_t tag, uint32_t v)
{
	uint8_t b[4];
	put_u32(b, v);
	return proto_put_tlv(m, tag, b, 4);
}
int proto_put_tlv_u64(struct proto_msg *m, uint16_t tag, uint64_t v)
{
	uint8_t b[8];
	put_u64(b, v);
	return proto_put_tlv(m, tag, b, 8);
}

void proto_tlv_iter_init(struct proto_tlv_iter *it, const uint8_t *p, size_t len)
{
	it->p = p;
	it->len = len;
	it->off = 0;
}

int proto_tlv_next(struct proto_tlv_iter *it, struct proto_tlv *t)
{
	if (it->off == it->len)
		return 0;
	struct cursor c = { { it->p, it->len }, it->off, 0 };
	t->tag = cur_u16(&c);
	t->len = cur_u32(&c);
	t->val = cur_take(&c, t->len);
	if (c.bad)
		return -EPROTO;
	it->off = c.off;
	return 1;
}

/* A TLV string: no embedded NUL, copied out NUL-terminated. */
static int tlv_strdup(const struct proto_tlv *t, char **out)
{
	if (memchr(t->val, '\0', t->len))
		return -EPROTO;
	char *s = malloc((size_t)t->len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, t->val, t->len);
	s[t->len] = '\0';
	free(*out);
	*out = s;
	return 0;
}

static int tlv_u32(const struct proto_tlv *t, uint32_t *v)
{
	struct cursor c = { { t->val, t->len }, 0, 0 };
	*v = cur_u32(&c);
	return (c.bad || t->len != 4) ? -EPROTO : 0;
}

static int tlv_u64(const struct proto_tlv *t, uint64_t *v)
{
	struct cursor c = { { t->val, t->len }, 0, 0 };
	*v = cur_u64(&c);
	return (c.bad || t->len != 8) ? -EPROTO : 0;
}

void proto_config_free(struct proto_config *c)
{
	free(c->hostname);
	free(c->hosts);
	free(c->resolv);
	free(c->ca_pem);
	for (uint32_t i = 0; i < c->n_disks; i++) {
		free(c->disks[i].serial);
		free(c->disks[i].path);
	}
	free(c->disks);
	free(c->ws_path);
	free(c->ws_owner);
	memset(c, 0, sizeof(*c));
}

static bool disk_fields_ok(const uint8_t *serial, size_t slen, const uint8_t *path, size_t plen)
{
	if (slen == 0 || slen > PROTO_DISK_SERIAL_MAX || plen == 0 || plen > PROTO_DISK_PATH_MAX ||
	    path[0] != '/' || memchr(path, '\0', plen))
		return false;
	for (size_t i = 0; i < slen; i++)
		if (!((serial[i] >= 'a' && serial[i] <= 'z') || (serial[i] >= '0' && serial[i] <= '9') ||
		      serial[i] == '-'))
			return false;
	return true;
}

static int add_disk(struct proto_config *c, const uint8_t *serial, size_t slen, const uint8_t *path,
		    size_t plen, uint32_t flags)
{
	if (!disk_fields_ok(serial, slen, path, plen))
		return -EINVAL;
	if (c->n_disks >= PROTO_MAX_DISKS)
		return -E2BIG;
	struct proto_disk *nd = realloc(c->disks, (c->n_disks + 1) * sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	c->disks = nd;
	struct proto_disk *d = &nd[c->n_disks];
	d->serial = strndup((const char *)serial, slen);
	d->path = strndup((const char *)path, plen);
	d->flags = flags;
	if (!d->serial || !d->path) {
		free(d->serial);
		free(d->path);
		return -ENOMEM;
	}
	c->n_disks++;
	return 0;
}

int proto_config_add_disk(struct proto_config *c, const char *serial, const char *path, uint32_t flags)
{
	return add_disk(c, (const uint8_t *)serial, strlen(serial), (const uint8_t *)path, strlen(path), flags);
}

/* u32 flags, u8 serial length, serial, path (the rest). Flag bits we do not know are kept and
 * ignored, so a newer host may add some. */
static int tlv_disk(const struct proto_tlv *t, struct proto_config *c)
{
	struct cursor cur = { { t->val, t->len }, 0, 0 };
	uint32_t flags = cur_u32(&cur);
	const uint8_t *slen = cur_take(&cur, 1);
	const uint8_t *serial = slen ? cur_take(&cur, *slen) : NULL;
	if (cur.bad || !serial)
		return -EPROTO;
	size_t plen = cur_left(&cur);
	const uint8_t *path = cur_take(&cur, plen);
	int r = add_disk(c, serial, *slen, path, plen, flags);
	return r == -ENOMEM ? r : (r < 0 ? -EPROTO : 0);
}

static int put_disk(struct proto_msg *m, const struct proto_disk *d)
{
	size_t slen = strlen(d->serial), plen = strlen(d->path);
	if (!disk_fields_ok((const uint8_t *)d->serial, slen, (const uint8_t *)d->path, plen))
		return -EINVAL;
	uint8_t v[4 + 1 + PROTO_DISK_SERIAL_MAX + PROTO_DISK_PATH_MAX];
	put_u32(v, d->flags);
	v[4] = (uint8_t)slen;
	memcpy(v + 5, d->serial, slen);
	memcpy(v + 5 + slen, d->path, plen);
	return proto_put_tlv(m, CFG_DISK, v, (uint32_t)(5 + slen + plen));
}

static int workspace_decode(const struct proto_tlv *w, struct proto_config *c)
{
	struct proto_tlv_iter it;
	struct proto_tlv t;
	int r;
	proto_tlv_iter_init(&it, w->val, w->len);
	while ((r = proto_tlv_next(&it, &t)) == 1) {
		if (t.tag == WS_PATH)
			r = c->ws_path ? -EPROTO : tlv_strdup(&t, &c->ws_path);
		else if (t.tag == WS_OWNER)
			r = c->ws_owner ? -EPROTO : tlv_strdup(&t, &c->ws_owner);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	/* the agent mounts there: an absolute path, or nothing */
	return c->ws_path && c->ws_path[0] == '/' ? 0 : -EPROTO;
}

int proto_config_decode(const uint8_t *p, size_t len, struct proto_config *c)
{
	memset(c, 0, sizeof(*c));
	struct proto_tlv_iter it;
	struct proto_tlv t;
	int r;
	proto_tlv_iter_init(&it, p, len);
	while ((r = proto_tlv_next(&it, &t)) == 1) {
		switch (t.tag) {
		case CFG_HOSTNAME: r = tlv_strdup(&t, &c->hostname); break;
		case CFG_HOSTS: r = tlv_strdup(&t, &c->hosts); break;
		case CFG_RESOLV: r = tlv_strdup(&t, &c->resolv); break;
		case CFG_TIME_NS: r = tlv_u64(&t, &c->time_ns); break;
		case CFG_CPU_QUOTA: r = tlv_u32(&t, &c->cpu_quota_us); break;
		case CFG_MTU: r = tlv_u32(&t, &c->mtu); break;
		case CFG_NETWORK: r = tlv_u32(&t, &c->network); break;
		case CFG_CA_PEM: r = tlv_strdup(&t, &c->ca_pem); break;
		case CFG_DISK: r = tlv_disk(&t, c); break;
		case CFG_WORKSPACE: r = c->ws_path ? -EPROTO : workspace_decode(&t, c); break;
		default: r = 0; break; /* unknown tags are skipped: newer hosts may add fields */
		}
		if (r < 0)
			break;
	}
	if (r < 0)
		proto_config_free(c);
	return r < 0 ? r : 0;
}

int proto_config_encode(struct proto_msg *m, const struct proto_config *c)
{
	int r = proto_msg_begin(m, PT_CONFIG, 0);
	if (r == 0 && c->hostname)
		r = proto_put_tlv_str(m, CFG_HOSTNAME, c->hostname);
	if (r == 0 && c->hosts)
		r = proto_put_tlv_str(m, CFG_HOSTS, c->hosts);
	if (r == 0 && c->resolv)
		r = proto_put_tlv_str(m, CFG_RESOLV, c->resolv);
	if (r == 0)
		r = proto_put_tlv_u64(m, CFG_TIME_NS, c->time_ns);
	if (r == 0)
		r = proto_put_tlv_u32(m, CFG_CPU_QUOTA, c->cpu_quota_us);
	if (r == 0)
		r = proto_put_tlv_u32(m, CFG_MTU, c->mtu);
	if (r == 0)
		r = proto_put_tlv_u32(m, CFG_NETWORK, c->network);
	for (uint32_t i = 0; r == 0 && i < c->n_disks; i++)
		r = put_disk(m, &c->disks[i]);
	if (r == 0 && c->ws_path) {
		/* nested TLVs: the outer header's length covers the inner ones */
		size_t inner = 6 + strlen(c->ws_path) + (c->ws_owner ? 6 + strlen(c->ws_owner) : 0);
		if (inner > PROTO_MAX_PAYLOAD)
			return -EMSGSIZE;
		r = proto_put_u16(m, CFG_WORKSPACE);
		if (r == 0)
			r = proto_put_u32(m, (uint32_t)inner);
		if (r == 0)
			r = proto_put_tlv_str(m, WS_PATH, c->ws_path);
		if (r == 0 && c->ws_owner)
			r = proto_put_tlv_str(m, WS_OWNER, c->ws_owner);
	}
	if (r == 0 && c->ca_pem)
		r = proto_put_tlv_str(m, CFG_CA_PEM, c->ca_pem);
	if (r)
		m->len = m->frame_start; /* no half-built frame may stay queued */
	return r ? r : proto_msg_end(m);
}

static int strv_push(char ***v, size_t *n, char *s)
{
	if (*n + 1 >= PROTO_MAX_ELEMS) {
		free(s);
		return -EPROTO;
	}
	char **nv = realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv) {
		free(s);
		return -ENOMEM;
	}
	nv[(*n)++] = s;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

static void strv_free_(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void proto_exec_free(struct proto_exec *x)
{
	strv_free_(x->argv);
	strv_free_(x->env);
	free(x->cwd);
	free(x->user);
	memset(x, 0, sizeof(*x));
}

static int exec_field(struct proto_exec *x, const struct proto_tlv *t, size_t *nargv, size_t *nenv)
{
	char *s = NULL;
	int r;
	switch (t->tag) {
	case EX_ARGV:
	case EX_ENV:
		r = tlv_strdup(t, &s);
		if (r < 0)
			return r;
		return t->tag == EX_ARGV ? strv_push(&x->argv, nargv, s) : strv_push(&x->env, nenv, s);
	case EX_CWD: return tlv_strdup(t, &x->cwd);
	case EX_USER: return tlv_strdup(t, &x->user);
	case EX_FLAGS: return tlv_u32(t, &x->flags);
	case EX_WINSIZE: {
		struct cursor c = { { t->val, t->len }, 0, 0 };
		x->rows = cur_u16(&c);
		x->cols = cur_u16(&c);
		return (c.bad || t->len != 4) ? -EPROTO : 0;
	}
	default: return 0;
	}
}

int proto_exec_decode(const uint8_t *p, size_t len, struct proto_exec *x)
{
	memset(x, 0, sizeof(*x));
	struct proto_tlv_iter it;
	struct proto_tlv t;
	size_t nargv = 0, nenv = 0;
	int r;
	proto_tlv_iter_init(&it, p, len);
	while ((r = proto_tlv_next(&it, &t)) == 1) {
		r = exec_field(x, &t, &nargv, &nenv);
		if (r < 0)
			break;
	}
	if (r == 0 && (nargv == 0 || x->argv[0][0] == '\0'))
		r = -EPROTO;
	if (r == 0 && !x->env && (x->env = calloc(1, sizeof(char *))) == NULL)
		r = -ENOMEM;
	if (r < 0)
		proto_exec_free(x);
	return r < 0 ? r : 0;
}

int proto_exec_encode(struct proto_msg *m, uint32_t stream, const struct proto_exec *x)
{
	int r = proto_msg_begin(m, PT_EXEC, stream);
	for (char **a = x->argv; r == 0 && a && *a; a++)
		r = proto_put_tlv_str(m, EX_ARGV, *a);
	for (char **e = x->env; r == 0 && e && *e; e++)
		r = proto_put_tlv_str(m, EX_ENV, *e);
	if (r == 0 && x->cwd)
		r = proto_put_tlv_str(m, EX_CWD, x->cwd);
	if (r == 0 && x->user)
		r = proto_put_tlv_str(m, EX_USER, x->user);
	if (r == 0)
		r = proto_put_tlv_u32(m, EX_FLAGS, x->flags);
	if (r == 0) {
		uint8_t ws[4];
		put_u16(ws, x->rows);
		put_u16(ws + 2, x->cols);
		r = proto_put_tlv(m, EX_WINSIZE, ws, 4);
	}
	return r ? r : proto_msg_end(m);
}

const char *proto_type_name(uint16_t type)
{
	switch (type) {
	case PT_CONFIG: return "CONFIG";
	case PT_EXEC: return "EXEC";
	case PT_STDIN: return "STDIN";
	case PT_RESIZE: return "RESIZE";
	case PT_SIGNAL: return "SIGNAL";
	case PT_CANCEL: return "CANCEL";
	case PT_PING: return "PING";
	case PT_SHUTDOWN: return "SHUTDOWN";
	case PT_HELLO: return "HELLO";
	case PT_READY: return "READY";
	case PT_STARTED: return "STARTED";
	case PT_STDOUT: return "STDOUT";
	case PT_STDERR: return "STDERR";
	case PT_EXIT: return "EXIT";
	case PT_PONG: return "PONG";
	case PT_LOG: return "LOG";
	case PT_ERROR: return "ERROR";
	case PT_CREDIT: return "CREDIT";
	default: return "?";
	}
}
