/* tests/unit/vfs_kernel.h - the fake guest kernel the vfs tests drive (test-only; included
 * once, after <cmocka.h>): FUSE requests written into one end of a socketpair, replies read
 * from it, the real worker pool on the other end; a temp dir holding the mounts ("ws", "ro.txt")
 * and "outside", a sibling the guest must never reach; helpers for the common requests. */
#ifndef ML_TESTS_VFS_KERNEL_H
#define ML_TESTS_VFS_KERNEL_H

#include "vfs/vfs.h"

/* A test file uses a part of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "vfs/vfs.h"


#define BIG (1u << 21)

static char tmp[256];
static uint8_t rbuf[BIG];

struct kern {
	int fd;
	struct vfs *v;
	uint64_t uniq;
	uint32_t uid, gid;
};

static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

static char *path_of(const char *rel)
{
	static char p[PATH_MAX + 300];
	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	return p;
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/vfs_fuse_test.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	sh("cd %s && mkdir -p ws/sub outside state && echo secret > outside/secret && echo hi > ws/hello"
	   " && ln -s ../outside ws/esc && ln -s /etc ws/abs && echo ro-data > ro.txt", tmp);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sh("chmod -R u+rwX %s; rm -rf %s", tmp, tmp);
	return 0;
}

/* ---- the fake kernel ---- */
static void put(uint8_t **p, const void *d, size_t n)
{
	memcpy(*p, d, n);
	*p += n;
}

static uint64_t send_req(struct kern *k, uint32_t op, uint64_t nodeid, const void *arg, size_t alen,
			 const char *n1, const char *n2, const void *data, size_t dlen)
{
	static uint8_t b[BIG];
	uint8_t *p = b + sizeof(struct fuse_in_header);
	if (alen)
		put(&p, arg, alen);
	if (n1)
		put(&p, n1, strlen(n1) + 1);
	if (n2)
		put(&p, n2, strlen(n2) + 1);
	if (dlen)
		put(&p, data, dlen);
	struct fuse_in_header h = { .len = (uint32_t)(p - b), .opcode = op, .unique = ++k->uniq,
				    .nodeid = nodeid, .uid = k->uid, .gid = k->gid, .pid = 1 };
	memcpy(b, &h, sizeof(h));
	for (size_t o = 0; o < h.len;) {
		ssize_t w = write(k->fd, b + o, h.len - o);
		assert_true(w > 0);
		o += (size_t)w;
	}
	return h.unique;
}

static void read_full(int fd, void *p, size_t n)
{
	for (size_t o = 0; o < n;) {
		ssize_t r = read(fd, (uint8_t *)p + o, n - o);
		assert_true(r > 0);
		o += (size_t)r;
	}
}

/* The next message: its header in *h, its body in rbuf; returns the body's length. */
static size_t read_rep(struct kern *k, struct fuse_out_header *h)
{
	read_full(k->fd, h, sizeof(*h));
	assert_true(h->len >= sizeof(*h) && h->len - sizeof(*h) <= sizeof(rbuf));
	read_full(k->fd, rbuf, h->len - sizeof(*h));
	return h->len - sizeof(*h);
}

/* One request, one reply: the error (0 or -errno); the body is copied to out. */
static int call(struct kern *k, uint32_t op, uint64_t nodeid, const void *arg, size_t alen,
		const char *n1, const char *n2, const void *data, size_t dlen, void *out, size_t outlen)
{
	uint64_t u = send_req(k, op, nodeid, arg, alen, n1, n2, data, dlen);
	struct fuse_out_header h;
	size_t n = read_rep(k, &h);
	assert_int_equal(h.unique, u);
	if (out)
		memcpy(out, rbuf, n < outlen ? n : outlen);
	return h.error;
}

static struct kern kstart(struct vfs_config *c)
{
	struct kern k = { .fd = -1 };
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct ml_err e = { 0 };
	int r = vfs_new(c, path_of("state"), &k.v, &e);
	if (r < 0)
		fail_msg("vfs_new: %s", e.msg);
	assert_int_equal(vfs_start(k.v, sv[0], &e), 0);
	k.fd = sv[1];
	k.uid = k.gid = 0;
	struct fuse_init_in in = { .major = 7, .minor = 37, .max_readahead = 131072,
				   .flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES };
	struct fuse_init_out out;
	assert_int_equal(call(&k, FUSE_INIT, 0, &in, sizeof(in), NULL, NULL, NULL, 0, &out, sizeof(out)), 0);
	assert_int_equal(out.major, 7);
	assert_int_equal(out.minor, 37);
	assert_int_equal(out.max_write, 1u << 20);
	assert_int_equal(out.flags & FUSE_WRITEBACK_CACHE, 0); /* write-through: one WRITE per write() */
	return k;
}

static void kstop(struct kern *k, int *server_fd)
{
	(void)server_fd;
	vfs_free(k->v);
	close(k->fd);
}

static struct vfs_config one_mount(enum vfs_mount_type type, const char *host, bool ro)
{
	struct vfs_config c = { .workspace = strdup("/workspace") };
	struct vfs_mount_cfg m = { .guest_path = strdup("/workspace"), .type = type,
				   .host_path = host ? strdup(host) : NULL, .readonly = ro };
	assert_int_equal(vfs_config_add_mount(&c, &m), 0);
	return c;
}

static int lookup(struct kern *k, uint64_t dir, const char *name, struct fuse_entry_out *e)
{
	return call(k, FUSE_LOOKUP, dir, NULL, 0, name, NULL, NULL, 0, e, sizeof(*e));
}

static int create(struct kern *k, uint64_t dir, const char *name, uint32_t flags, uint32_t mode,
		  struct fuse_entry_out *e, uint64_t *fh)
{
	struct fuse_create_in in = { .flags = flags, .mode = S_IFREG | mode };
	struct { struct fuse_entry_out e; struct fuse_open_out o; } out = { 0 };
	int r = call(k, FUSE_CREATE, dir, &in, sizeof(in), name, NULL, NULL, 0, &out, sizeof(out));
	if (e)
		*e = out.e;
	if (fh)
		*fh = out.o.fh;
	return r;
}

static int kwrite(struct kern *k, uint64_t fh, uint64_t off, const void *d, size_t n)
{
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = (uint32_t)n };
	struct fuse_write_out o = { 0 };
	int r = call(k, FUSE_WRITE, 0, &in, sizeof(in), NULL, NULL, d, n, &o, sizeof(o));
	return r < 0 ? r : (int)o.size;
}

static int kread(struct kern *k, uint64_t fh, uint64_t off, uint32_t size)
{
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
	uint64_t u = send_req(k, FUSE_READ, 0, &in, sizeof(in), NULL, NULL, NULL, 0);
	struct fuse_out_header h;
	size_t n = read_rep(k, &h);
	assert_int_equal(h.unique, u);
	return h.error < 0 ? h.error : (int)n;
}

static void release(struct kern *k, uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };
	assert_int_equal(call(k, FUSE_RELEASE, 0, &in, sizeof(in), NULL, NULL, NULL, 0, NULL, 0), 0);
}

static int kopen(struct kern *k, uint64_t node, uint32_t flags, uint64_t *fh)
{
	struct fuse_open_in in = { .flags = flags };
	struct fuse_open_out o = { 0 };
	int r = call(k, FUSE_OPEN, node, &in, sizeof(in), NULL, NULL, NULL, 0, &o, sizeof(o));
	*fh = o.fh;
	return r;
}

static char *slurp(const char *rel)
{
	static char b[4096];
	memset(b, 0, sizeof(b));
	int fd = open(path_of(rel), O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	return n >= 0 ? b : NULL;
}

#endif
