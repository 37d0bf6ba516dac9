/* vfs/fuse_req.c - the one decoder of guest requests. The files channel carries whatever the
 * guest writes, so a message is hostile until this file has checked it: its length against the
 * buffer, the fixed argument's size for the opcode, every name's terminator and length, the
 * write payload against its declared size. A bad message gets an error reply; nothing here
 * reads outside the buffer (tests/fuzz/vfs_request.c holds it to that). */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "base/buf.h"
#include "vfs/internal.h"

enum tail {
	T_NONE,   /* the fixed part may be followed by nothing we read */
	T_NAME,   /* one entry name */
	T_NAME2,  /* two entry names (rename) */
	T_LINK,   /* entry name, then symlink target */
	T_DATA,   /* raw bytes (write data, extension payloads) */
	T_XNAME,  /* one xattr name */
	T_XSET,   /* xattr name, then the value */
	T_FORGETS,/* fuse_forget_one records */
};

struct opdesc {
	uint32_t fixed;   /* minimum size of the fixed argument */
	uint32_t copy;    /* bytes of it we copy (<= sizeof the union) */
	enum tail tail;
};

static bool opdesc_of(uint32_t op, struct opdesc *d)
{
#define D(f, c, t) (*d = (struct opdesc){ (f), (c), (t) }, true)
	switch (op) {
	case FUSE_INIT: return D(16, sizeof(struct fuse_init_in), T_NONE);
	case FUSE_DESTROY: case FUSE_STATFS: case FUSE_READLINK: return D(0, 0, T_NONE);
	case FUSE_LOOKUP: case FUSE_UNLINK: case FUSE_RMDIR: return D(0, 0, T_NAME);
	case FUSE_FORGET: return D(sizeof(struct fuse_forget_in), sizeof(struct fuse_forget_in), T_NONE);
	case FUSE_BATCH_FORGET: return D(sizeof(struct fuse_batch_forget_in), sizeof(struct fuse_batch_forget_in), T_FORGETS);
	case FUSE_GETATTR: return D(sizeof(struct fuse_getattr_in), sizeof(struct fuse_getattr_in), T_NONE);
	case FUSE_SETATTR: return D(sizeof(struct fuse_setattr_in), sizeof(struct fuse_setattr_in), T_NONE);
	case FUSE_SYMLINK: return D(0, 0, T_LINK);
	case FUSE_MKNOD: return D(sizeof(struct fuse_mknod_in), sizeof(struct fuse_mknod_in), T_NAME);
	case FUSE_MKDIR: return D(sizeof(struct fuse_mkdir_in), sizeof(struct fuse_mkdir_in), T_NAME);
	case FUSE_RENAME: return D(sizeof(struct fuse_rename_in), sizeof(struct fuse_rename_in), T_NAME2);
	case FUSE_RENAME2: return D(sizeof(struct fuse_rename2_in), sizeof(struct fuse_rename2_in), T_NAME2);
	case FUSE_LINK: return D(sizeof(struct fuse_link_in), sizeof(struct fuse_link_in), T_NAME);
	case FUSE_OPEN: case FUSE_OPENDIR:
		return D(sizeof(struct fuse_open_in), sizeof(struct fuse_open_in), T_NONE);
	case FUSE_CREATE: return D(sizeof(struct fuse_create_in), sizeof(struct fuse_create_in), T_NAME);
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS:
		return D(sizeof(struct fuse_read_in), sizeof(struct fuse_read_in), T_NONE);
	case FUSE_WRITE: return D(sizeof(struct fuse_write_in), sizeof(struct fuse_write_in), T_DATA);
	case FUSE_RELEASE: case FUSE_RELEASEDIR:
		return D(sizeof(struct fuse_release_in), sizeof(struct fuse_release_in), T_NONE);
	case FUSE_FLUSH: return D(sizeof(struct fuse_flush_in), sizeof(struct fuse_flush_in), T_NONE);
	case FUSE_FSYNC: case FUSE_FSYNCDIR:
		return D(sizeof(struct fuse_fsync_in), sizeof(struct fuse_fsync_in), T_NONE);
	/* without FUSE_SETXATTR_EXT the kernel sends the old 8-byte argument */
	case FUSE_SETXATTR: return D(FUSE_COMPAT_SETXATTR_IN_SIZE, FUSE_COMPAT_SETXATTR_IN_SIZE, T_XSET);
	case FUSE_GETXATTR: return D(sizeof(struct fuse_getxattr_in), sizeof(struct fuse_getxattr_in), T_XNAME);
	case FUSE_LISTXATTR: return D(sizeof(struct fuse_getxattr_in), sizeof(struct fuse_getxattr_in), T_NONE);
	case FUSE_REMOVEXATTR: return D(0, 0, T_XNAME);
	case FUSE_ACCESS: return D(sizeof(struct fuse_access_in), sizeof(struct fuse_access_in), T_NONE);
	case FUSE_INTERRUPT: return D(sizeof(struct fuse_interrupt_in), sizeof(struct fuse_interrupt_in), T_NONE);
	case FUSE_FALLOCATE: return D(sizeof(struct fuse_fallocate_in), sizeof(struct fuse_fallocate_in), T_NONE);
	case FUSE_LSEEK: return D(sizeof(struct fuse_lseek_in), sizeof(struct fuse_lseek_in), T_NONE);
	case VFS_AGENT_HELLO: return D(0, 0, T_DATA);
	case VFS_AGENT_SYNC_ACK: return D(0, 0, T_DATA);
	default: return false;
	}
#undef D
}

bool vfs_req_no_reply(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
	       opcode == VFS_AGENT_HELLO || opcode == VFS_AGENT_SYNC_ACK;
}

int vfs_name_check(const char *name, size_t len)
{
	if (len == 0 || memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	return 0;
}

/* A NUL-terminated string of 1..max bytes at the cursor; the cursor moves past the NUL. */
static const char *take_str(struct cursor *c, size_t max, int *err)
{
	size_t left = cur_left(c);
	const char *p = cur_take(c, 0);
	const char *nul = p ? memchr(p, '\0', left) : NULL;
	if (!nul) {
		*err = -EINVAL;
		return NULL;
	}
	size_t len = (size_t)(nul - p);
	if (len == 0 || len > max) {
		*err = len ? -ENAMETOOLONG : -EINVAL;
		return NULL;
	}
	cur_take(c, len + 1);
	return p;
}

static const char *take_name(struct cursor *c, int *err)
{
	const char *n = take_str(c, NAME_MAX, err);
	if (n && (*err = vfs_name_check(n, strlen(n))) < 0)
		return NULL;
	return n;
}

static int decode_tail(struct cursor *c, enum tail t, struct vfs_req *r)
{
	int err = 0;
	switch (t) {
	case T_NONE:
		return 0;
	case T_NAME:
		r->name = take_name(c, &err);
		return err;
	case T_NAME2:
		if ((r->name = take_name(c, &err)))
			r->name2 = take_name(c, &err);
		return err;
	case T_LINK:
		if ((r->name = take_name(c, &err)))
			r->name2 = take_str(c, PATH_MAX - 1, &err);
		return err;
	case T_XNAME:
		r->name = take_str(c, XATTR_NAME_MAX, &err);
		return err;
	case T_XSET: {
		r->name = take_str(c, XATTR_NAME_MAX, &err);
		if (!r->name)
			return err;
		/* the value is exactly the declared size, and no more than Linux allows */
		if (r->in.setxattr.size > XATTR_SIZE_MAX || r->in.setxattr.size != cur_left(c))
			return -E2BIG;
		r->data_len = cur_left(c);
		r->data = cur_take(c, r->data_len);
		return 0;
	}
	case T_DATA:
		r->data_len = cur_left(c);
		r->data = cur_take(c, r->data_len);
		if (r->h.opcode == FUSE_WRITE && r->in.write.size != r->data_len)
			return -EINVAL;
		return 0;
	case T_FORGETS:
		if (r->in.batch.count > cur_left(c) / sizeof(struct fuse_forget_one))
			return -EINVAL;
		r->data_len = (size_t)r->in.batch.count * sizeof(struct fuse_forget_one);
		r->data = cur_take(c, r->data_len);
		return 0;
	}
	return -EINVAL;
}

int vfs_req_decode(const uint8_t *buf, size_t len, struct vfs_req *r)
{
	memset(r, 0, sizeof(*r));
	struct cursor c = { .b = { buf, len } };
	const void *h = cur_take(&c, VFS_HDR_LEN);
	if (!h)
		return -EINVAL;
	memcpy(&r->h, h, VFS_HDR_LEN);
	if (r->h.len != len)
		return -EINVAL;
	/* request extensions (security context, supplementary groups) are never negotiated */
	if (r->h.total_extlen)
		return -EINVAL;
	struct opdesc d;
	if (!opdesc_of(r->h.opcode, &d))
		return -ENOSYS;
	if (cur_left(&c) < d.fixed)
		return -EINVAL;
	size_t have = cur_left(&c) < d.copy ? cur_left(&c) : d.copy;
	memcpy(&r->in, cur_take(&c, 0), have);
	/* INIT may carry more than we know of (newer kernels); the rest has nothing we read */
	cur_take(&c, d.fixed > have ? d.fixed : have);
	return decode_tail(&c, d.tail, r);
}
