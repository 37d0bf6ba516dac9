/* vfs/fuse_ops.c - one handler per FUSE opcode: take the decoded request, turn node ids and
 * handles into our objects (an id or fh we did not give out fails that request with ESTALE or
 * EBADF), call the workspace operation (vops.c), encode the reply. Caching the guest kernel
 * may do: entries, negative entries and attributes (entry_timeout); writes are write-through
 * (no writeback cache), so each write() a guest program makes is one WRITE here, one event. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "vfs/internal.h"
#include "vfs/vops.h"


static void reply_err(struct vfs *v, const struct vfs_req *r, int err)
{
	chan_reply(v, r->h.unique, err, NULL, 0);
}

static void reply_ok(struct vfs *v, const struct vfs_req *r, const void *p, size_t n)
{
	chan_reply(v, r->h.unique, 0, p, n);
}

static struct node *node_get(struct vfs *v, uint64_t id)
{
	vtree_lock(v);
	struct node *n = vtree_get(v, id);
	if (n)
		vtree_ref(n);
	vtree_unlock(v);
	return n;
}

static void to_fuse_attr(const struct vfs_attr *a, struct fuse_attr *f)
{
	*f = (struct fuse_attr){
		.ino = a->ino, .size = a->size, .blocks = a->blocks, .atime = (uint64_t)a->atime,
		.mtime = (uint64_t)a->mtime, .ctime = (uint64_t)a->ctime, .atimensec = a->atimensec,
		.mtimensec = a->mtimensec, .ctimensec = a->ctimensec, .mode = a->mode, .nlink = a->nlink,
		.uid = a->uid, .gid = a->gid, .rdev = a->rdev, .blksize = 4096,
	};
}

/* How long the guest kernel may trust an entry or attributes. Only a live host mount (host_fs,
 * ro) changes behind the guest's back, so only those get a short timeout (host edits show within
 * a second); an overlay copy, a memory tree and synthesized directories change only through us,
 * and our own changes from the files API are pushed to the kernel (fuse_invalidate).
 * A file with more than one name is more than one node (a node is a name here), so the guest
 * kernel caches its attributes once per name; a write through one name must not leave another
 * with a stale size: such files' attributes are not cached at all. */
#define TIMEOUT_LIVE 1      /* seconds */
#define TIMEOUT_PRIVATE 60

static uint64_t entry_timeout(const struct vmount *m)
{
	return m && m->type == VFS_MOUNT_HOST_FS ? TIMEOUT_LIVE : TIMEOUT_PRIVATE;
}

static uint64_t attr_timeout(const struct vmount *m, const struct vfs_attr *a)
{
	return a && S_ISREG(a->mode) && a->nlink > 1 ? 0 : entry_timeout(m);
}

/* m: the mount the entry belongs to (a negative entry: its directory's) */
static void fill_entry(struct fuse_entry_out *e, uint64_t nodeid, const struct vmount *m,
		       const struct vfs_attr *a)
{
	memset(e, 0, sizeof(*e));
	e->nodeid = nodeid;
	e->entry_valid = entry_timeout(m);
	e->attr_valid = attr_timeout(m, a);
	if (a)
		to_fuse_attr(a, &e->attr);
}

static void reply_entry(struct vfs *v, const struct vfs_req *r, int err, struct node *n, const struct vfs_attr *a)
{
	if (err < 0) {
		reply_err(v, r, err);
		return;
	}
	struct fuse_entry_out e;
	fill_entry(&e, n->id, n->m, a);
	reply_ok(v, r, &e, sizeof(e));
}

static void reply_attr(struct vfs *v, const struct vfs_req *r, int err, const struct vmount *m,
		       const struct vfs_attr *a)
{
	if (err < 0) {
		reply_err(v, r, err);
		return;
	}
	struct fuse_attr_out o = { .attr_valid = attr_timeout(m, a) };
	to_fuse_attr(a, &o.attr);
	reply_ok(v, r, &o, sizeof(o));
}

static void do_init(struct vfs *v, const struct vfs_req *r)
{
	const struct fuse_init_in *in = &r->in.init;
	if (in->major != FUSE_KERNEL_VERSION || in->minor < VFS_MIN_MINOR) {
		ml_warn("vfs: the guest kernel speaks FUSE %u.%u, we need 7.%u or later", in->major,
			in->minor, VFS_MIN_MINOR);
		reply_err(v, r, -EPROTO);
		return;
	}
	uint32_t want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS |
			FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_AUTO_INVAL_DATA |
			FUSE_CACHE_SYMLINKS | FUSE_HANDLE_KILLPRIV_V2;
	/* KILLPRIV_V2: set-id bits are dropped here (vop_kill_suidgid), which spares a GETATTR
	 * before every chown the kernel would otherwise make */
	struct fuse_init_out o = {
		.major = FUSE_KERNEL_VERSION,
		.minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = in->max_readahead, .flags = in->flags & want,
		.max_background = 64, .congestion_threshold = 48, .max_write = VFS_MAX_WRITE,
		.time_gran = 1, .max_pages = VFS_MAX_WRITE / 4096,
	};
	v->minor = o.minor;
	/* before the reply: the kernel sends its next requests as soon as it has it, and another
	 * worker may take one of them before this one returns (it would get EIO) */
	__atomic_store_n(&v->inited, true, __ATOMIC_RELEASE);
	reply_ok(v, r, &o, sizeof(o));
}

static void do_agent_hello(struct vfs *v, const struct vfs_req *r)
{
	struct buf b = { r->data, r->data_len };
	struct cursor c = { .b = b };
	uint32_t ver = cur_u32(&c), uid = cur_u32(&c), gid = cur_u32(&c);
	if (c.bad || ver != VFS_AGENT_VERSION) {
		ml_warn("vfs: unexpected hello from the guest agent (version %u)", ver);
		return;
	}
	__atomic_store_n(&v->owner_uid, uid, __ATOMIC_RELAXED);
	__atomic_store_n(&v->owner_gid, gid, __ATOMIC_RELAXED);
	ml_info("vfs: the workspace's files are owned by %u:%u in the guest", uid, gid);
}

static void do_sync_ack(struct vfs *v, const struct vfs_req *r)
{
	struct cursor c = { .b = { r->data, r->data_len } };
	uint64_t seq = cur_u64(&c);
	if (c.bad)
		return;
	pthread_mutex_lock(&v->sync_mu);
	if (seq > v->sync_acked && seq <= v->sync_sent)
		v->sync_acked = seq;
	pthread_cond_broadcast(&v->sync_cv);
	pthread_mutex_unlock(&v->sync_mu);
}

static void do_forget(struct vfs *v, uint64_t id, uint64_t count)
{
	vtree_lock(v);
	struct node *n = vtree_get(v, id);
	if (n)
		vtree_forget(v, n, count);
	vtree_unlock(v);
}

static void do_batch_forget(struct vfs *v, const struct vfs_req *r)
{
	for (size_t o = 0; o + sizeof(struct fuse_forget_one) <= r->data_len; o += sizeof(struct fuse_forget_one)) {
		struct fuse_forget_one f;
		memcpy(&f, r->data + o, sizeof(f));
		do_forget(v, f.nodeid, f.nlookup);
	}
}

static struct vfs_cred cred_of(const struct vfs_req *r) { return (struct vfs_cred){ r->h.uid, r->h.gid }; }

static void do_lookup(struct vfs *v, const struct vfs_req *r, struct node *dir)
{
	struct node *n;
	struct vfs_attr a;
	int err = vop_lookup(v, dir, r->name, true, &n, &a);
	if (err == -ENOENT) { /* a negative entry the kernel may cache */
		struct fuse_entry_out e;
		fill_entry(&e, 0, dir->m, NULL);
		reply_ok(v, r, &e, sizeof(e));
		return;
	}
	reply_entry(v, r, err, n, &a);
}

static void do_getattr(struct vfs *v, const struct vfs_req *r, struct node *n)
{
	struct handle *h = r->in.getattr.getattr_flags & FUSE_GETATTR_FH ? handle_get(v, r->in.getattr.fh) : NULL;
	struct vfs_attr a;
	int err = vop_stat(v, n, h && h->node == n ? h : NULL, &a);
	handle_put(v, h);
	reply_attr(v, r, err, n->m, &a);
}

static struct timespec fuse_time(uint64_t sec, uint32_t nsec, bool now)
{
	return now ? (struct timespec){ 0, UTIME_NOW } : (struct timespec){ (time_t)sec, nsec };
}

static void do_setattr(struct vfs *v, const struct vfs_req *r, struct node *n)
{
	const struct fuse_setattr_in *in = &r->in.setattr;
	struct vfs_setattr s = { .valid = in->valid, .mode = in->mode, .uid = in->uid, .gid = in->gid,
				 .size = in->size,
				 .atime = fuse_time(in->atime, in->atimensec, in->valid & FATTR_ATIME_NOW),
				 .mtime = fuse_time(in->mtime, in->mtimensec, in->valid & FATTR_MTIME_NOW) };
	if (((in->valid & FATTR_SIZE) && in->size > INT64_MAX) || in->atimensec >= 1000000000u ||
	    in->mtimensec >= 1000000000u) {
		reply_err(v, r, -EINVAL);
		return;
	}
	struct handle *h = in->valid & FATTR_FH ? handle_get(v, in->fh) : NULL;
	struct vfs_attr a;
	int err = vop_setattr(v, n, h && h->node == n ? h : NULL, &s, &a);
	handle_put(v, h);
	reply_attr(v, r, err, n->m, &a);
}

static void do_readlink(struct vfs *v, const struct vfs_req *r, struct node *n)
{
	char buf[PATH_MAX];
	int l = vop_readlink(v, n, buf, sizeof(buf));
	if (l < 0)
		reply_err(v, r, l);
	else
		reply_ok(v, r, buf, (size_t)l);
}

static void do_make(struct vfs *v, const struct vfs_req *r, struct node *dir, enum vop_make kind, uint32_t mode)
{
	struct vfs_cred c = cred_of(r);
	struct node *n;
	struct vfs_attr a;
	int err = vop_make(v, kind, &c, dir, r->name, mode, r->name2, true, &n, &a);
	reply_entry(v, r, err, n, &a);
}

static void do_link(struct vfs *v, const struct vfs_req *r, struct node *dir)
{
	struct node *src = node_get(v, r->in.link.oldnodeid), *n = NULL;
	struct vfs_attr a;
	int err = src ? vop_link(v, src, dir, r->name, true, &n, &a) : -ESTALE;
	vop_put(v, src);
	reply_entry(v, r, err, n, &a);
}

static void do_rename(struct vfs *v, const struct vfs_req *r, struct node *dir)
{
	uint32_t flags = r->h.opcode == FUSE_RENAME2 ? r->in.rename.flags : 0;
	struct node *ndir = node_get(v, r->in.rename.newdir);
	/* RENAME_EXCHANGE and RENAME_WHITEOUT are not offered: the tree would need both sides */
	int err = !ndir ? -ESTALE : (flags & ~RENAME_NOREPLACE) ? -EINVAL
		  : vop_rename(v, dir, r->name, ndir, r->name2, flags);
	vop_put(v, ndir);
	reply_err(v, r, err);
}

static void do_open(struct vfs *v, const struct vfs_req *r, struct node *n, bool dir)
{
	struct fuse_open_out o = { 0 };
	struct handle *h = NULL;
	int err = dir ? vop_opendir(v, n, &o.fh, NULL) : vop_open(v, n, (int)r->in.open.flags & ~O_CREAT, &o.fh, &h);
	if (err == 0 && !dir && (r->in.open.open_flags & FUSE_OPEN_KILL_SUIDGID))
		vop_kill_suidgid(v, n, h);
	if (err < 0)
		reply_err(v, r, err);
	else
		reply_ok(v, r, &o, sizeof(o));
}

static void do_create(struct vfs *v, const struct vfs_req *r, struct node *dir)
{
	struct vfs_cred c = cred_of(r);
	struct node *n;
	struct vfs_attr a;
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out = { 0 };
	int err = vop_create(v, &c, dir, r->name, (int)r->in.create.flags, r->in.create.mode, true, &n,
			     &out.o.fh, &a);
	if (err < 0) {
		reply_err(v, r, err);
		return;
	}
	fill_entry(&out.e, n->id, n->m, &a);
	reply_ok(v, r, &out, sizeof(out));
}

static bool range_ok(uint64_t off, uint64_t len) { return off <= INT64_MAX && len <= INT64_MAX - off; }

static void do_read(struct vfs *v, const struct vfs_req *r, uint8_t *buf)
{
	const struct fuse_read_in *in = &r->in.read;
	if (in->size > VFS_MAX_WRITE || !range_ok(in->offset, in->size)) {
		reply_err(v, r, -EINVAL);
		return;
	}
	struct handle *h = handle_get(v, in->fh);
	ssize_t n = !h ? -EBADF : h->is_dir ? -EISDIR : vop_read(v, h, buf, in->size, in->offset);
	handle_put(v, h);
	if (n < 0)
		reply_err(v, r, (int)n);
	else
		reply_ok(v, r, buf, (size_t)n);
}

static void do_write(struct vfs *v, const struct vfs_req *r)
{
	const struct fuse_write_in *in = &r->in.write;
	if (!range_ok(in->offset, r->data_len)) {
		reply_err(v, r, -EFBIG);
		return;
	}
	struct handle *h = handle_get(v, in->fh);
	ssize_t n = !h ? -EBADF : h->is_dir ? -EISDIR : vop_write(v, h, r->data, r->data_len, in->offset);
	if (n > 0 && (in->write_flags & FUSE_WRITE_KILL_SUIDGID))
		vop_kill_suidgid(v, h->node, h);
	handle_put(v, h);
	struct fuse_write_out o = { .size = n > 0 ? (uint32_t)n : 0 };
	if (n < 0)
		reply_err(v, r, (int)n);
	else
		reply_ok(v, r, &o, sizeof(o));
}

static void do_statfs(struct vfs *v, const struct vfs_req *r, struct node *n)
{
	struct statvfs st;
	int err = vop_statfs(v, n, &st);
	struct fuse_statfs_out o = { .st = {
		.blocks = st.f_blocks, .bfree = st.f_bfree, .bavail = st.f_bavail, .files = st.f_files,
		.ffree = st.f_ffree, .bsize = (uint32_t)st.f_bsize, .namelen = (uint32_t)st.f_namemax,
		.frsize = (uint32_t)st.f_frsize } };
	if (err < 0)
		reply_err(v, r, err);
	else
		reply_ok(v, r, &o, sizeof(o));
}

static void do_fsync(struct vfs *v, const struct vfs_req *r)
{
	struct handle *h = handle_get(v, r->in.fsync.fh);
	int err = h ? vop_fsync(v, h, r->in.fsync.fsync_flags & 1) : -EBADF;
	handle_put(v, h);
	reply_err(v, r, err);
}

static void do_fallocate(struct vfs *v, const struct vfs_req *r)
{
	const struct fuse_fallocate_in *in = &r->in.fallocate;
	struct handle *h = handle_get(v, in->fh);
	int err = !h ? -EBADF : h->is_dir ? -EISDIR : !range_ok(in->offset, in->length) ? -EFBIG
		  : h->node->m->readonly ? -EROFS
		  : h->node->m->be->fallocate(v, h, (int)in->mode, in->offset, in->length);
	handle_put(v, h);
	reply_err(v, r, err);
}

static void do_lseek(struct vfs *v, const struct vfs_req *r)
{
	const struct fuse_lseek_in *in = &r->in.lseek;
	struct handle *h = handle_get(v, in->fh);
	int64_t off = !h ? -EBADF : h->is_dir ? -EISDIR
		      : (in->whence != SEEK_DATA && in->whence != SEEK_HOLE) || in->offset > INT64_MAX ? -EINVAL
		      : h->node->m->be->lseek(v, h, (int64_t)in->offset, (int)in->whence);
	handle_put(v, h);
	struct fuse_lseek_out o = { .offset = (uint64_t)off };
	if (off < 0)
		reply_err(v, r, (int)off);
	else
		reply_ok(v, r, &o, sizeof(o));
}

/* ---- extended attributes ---- */
static void do_xattr(struct vfs *v, const struct vfs_req *r, struct node *n, uint8_t *buf)
{
	const struct backend *be = n->m ? n->m->be : NULL;
	uint32_t op = r->h.opcode;
	if (op == FUSE_SETXATTR || op == FUSE_REMOVEXATTR) {
		int err = !be ? -EROFS : n->m->readonly ? -EROFS
			  : op == FUSE_SETXATTR ? be->setxattr(v, n, r->name, r->data, r->data_len, (int)r->in.setxattr.flags)
			  : be->removexattr(v, n, r->name);
		reply_err(v, r, err);
		return;
	}
	size_t size = r->in.getxattr.size > XATTR_SIZE_MAX ? XATTR_SIZE_MAX : r->in.getxattr.size;
	ssize_t l = !be ? (op == FUSE_GETXATTR ? -ENODATA : 0)
		    : op == FUSE_GETXATTR ? be->getxattr(v, n, r->name, buf, size) : be->listxattr(v, n, (char *)buf, size);
	if (l < 0) {
		reply_err(v, r, (int)l);
	} else if (size == 0) {
		struct fuse_getxattr_out o = { .size = (uint32_t)l };
		reply_ok(v, r, &o, sizeof(o));
	} else {
		reply_ok(v, r, buf, (size_t)l);
	}
}

/* ---- directories ---- */
static size_t put_dirent(uint8_t *p, size_t room, uint64_t ino, uint64_t off, uint32_t type, const char *name)
{
	size_t nl = strlen(name), rec = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + nl);
	if (rec > room)
		return 0;
	struct fuse_dirent d = { .ino = ino, .off = off, .namelen = (uint32_t)nl, .type = type };
	memcpy(p, &d, FUSE_NAME_OFFSET);
	memcpy(p + FUSE_NAME_OFFSET, name, nl);
	memset(p + FUSE_NAME_OFFSET + nl, 0, rec - FUSE_NAME_OFFSET - nl);
	return rec;
}

/* One READDIRPLUS record; the entry's lookup count is taken only once the record fits. */
static size_t put_direntplus(struct vfs *v, struct handle *h, uint8_t *p, size_t room, uint64_t off,
			     const struct dirent_rec *e)
{
	size_t nl = strlen(e->name), rec = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + nl);
	if (rec > room)
		return 0;
	struct fuse_direntplus d = { 0 };
	d.dirent = (struct fuse_dirent){ .ino = e->ino, .off = off, .namelen = (uint32_t)nl, .type = e->type };
	bool dots = !strcmp(e->name, ".") || !strcmp(e->name, "..");
	struct node *n;
	struct vfs_attr a;
	if (!dots && vop_lookup(v, h->node, e->name, true, &n, &a) == 0) {
		fill_entry(&d.entry_out, n->id, n->m, &a);
		d.dirent.ino = a.ino;
	}
	memcpy(p, &d, FUSE_NAME_OFFSET_DIRENTPLUS);
	memcpy(p + FUSE_NAME_OFFSET_DIRENTPLUS, e->name, nl);
	memset(p + FUSE_NAME_OFFSET_DIRENTPLUS + nl, 0, rec - FUSE_NAME_OFFSET_DIRENTPLUS - nl);
	return rec;
}

static void do_readdir(struct vfs *v, const struct vfs_req *r, uint8_t *buf, bool plus)
{
	const struct fuse_read_in *in = &r->in.read;
	struct handle *h = handle_get(v, in->fh);
	if (!h || !h->is_dir) {
		handle_put(v, h);
		reply_err(v, r, h ? -ENOTDIR : -EBADF);
		return;
	}
	size_t room = in->size > VFS_MAX_WRITE ? VFS_MAX_WRITE : in->size, used = 0;
	int err = 0;
	pthread_mutex_lock(&h->lock);
	if (in->offset == 0 || !h->listed)
		err = vop_list(v, h);
	/* offsets: 1 is ".", 2 is "..", 3 + i is h->ents[i] */
	for (uint64_t i = in->offset; err == 0 && i < h->nents + 2; i++) {
		/* glibc's readdir skips entries whose inode number is 0 */
		struct dirent_rec dots = { .name = i == 0 ? "." : "..", .ino = h->node->id | 1ull << 63, .type = DT_DIR };
		const struct dirent_rec *e = i < 2 ? &dots : &h->ents[i - 2];
		size_t n = plus ? put_direntplus(v, h, buf + used, room - used, i + 1, e)
				: put_dirent(buf + used, room - used, e->ino ? e->ino : 1, i + 1, e->type, e->name);
		if (n == 0)
			break;
		used += n;
	}
	pthread_mutex_unlock(&h->lock);
	handle_put(v, h);
	if (err < 0)
		reply_err(v, r, err);
	else
		reply_ok(v, r, buf, used);
}

/* Requests that name a node: the node is looked up (and held) first. */
static void dispatch_node(struct vfs *v, const struct vfs_req *r, struct node *n, uint8_t *buf)
{
	switch (r->h.opcode) {
	case FUSE_LOOKUP: do_lookup(v, r, n); break;
	case FUSE_GETATTR: do_getattr(v, r, n); break;
	case FUSE_SETATTR: do_setattr(v, r, n); break;
	case FUSE_READLINK: do_readlink(v, r, n); break;
	case FUSE_SYMLINK: do_make(v, r, n, VOP_SYMLINK, S_IFLNK | 0777); break;
	case FUSE_MKNOD: do_make(v, r, n, VOP_MKNOD, r->in.mknod.mode); break;
	case FUSE_MKDIR: do_make(v, r, n, VOP_MKDIR, r->in.mkdir.mode); break;
	case FUSE_UNLINK: reply_err(v, r, vop_unlink(v, n, r->name, false, false)); break;
	case FUSE_RMDIR: reply_err(v, r, vop_unlink(v, n, r->name, true, false)); break;
	case FUSE_RENAME: case FUSE_RENAME2: do_rename(v, r, n); break;
	case FUSE_LINK: do_link(v, r, n); break;
	case FUSE_OPEN: do_open(v, r, n, false); break;
	case FUSE_OPENDIR: do_open(v, r, n, true); break;
	case FUSE_CREATE: do_create(v, r, n); break;
	case FUSE_STATFS: do_statfs(v, r, n); break;
	case FUSE_SETXATTR: case FUSE_GETXATTR: case FUSE_LISTXATTR: case FUSE_REMOVEXATTR:
		do_xattr(v, r, n, buf);
		break;
	default: reply_err(v, r, -ENOSYS); break;
	}
}

static bool names_node(uint32_t op)
{
	switch (op) {
	case FUSE_LOOKUP: case FUSE_GETATTR: case FUSE_SETATTR: case FUSE_READLINK: case FUSE_SYMLINK:
	case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME:
	case FUSE_RENAME2: case FUSE_LINK: case FUSE_OPEN: case FUSE_OPENDIR: case FUSE_CREATE:
	case FUSE_STATFS: case FUSE_SETXATTR: case FUSE_GETXATTR: case FUSE_LISTXATTR:
	case FUSE_REMOVEXATTR:
		return true;
	default:
		return false;
	}
}

void fuse_dispatch(struct vfs *v, const struct vfs_req *r, uint8_t *buf)
{
	uint32_t op = r->h.opcode;
	if (op == VFS_AGENT_HELLO)
		return do_agent_hello(v, r);
	if (op == VFS_AGENT_SYNC_ACK)
		return do_sync_ack(v, r);
	if (op == FUSE_INIT)
		return do_init(v, r);
	if (!__atomic_load_n(&v->inited, __ATOMIC_ACQUIRE)) {
		if (!vfs_req_no_reply(op))
			reply_err(v, r, -EIO);
		return;
	}
	if (names_node(op)) {
		struct node *n = node_get(v, r->h.nodeid);
		if (!n)
			reply_err(v, r, -ESTALE);
		else
			dispatch_node(v, r, n, buf);
		vop_put(v, n);
		return;
	}
	switch (op) {
	case FUSE_FORGET: do_forget(v, r->h.nodeid, r->in.forget.nlookup); break;
	case FUSE_BATCH_FORGET: do_batch_forget(v, r); break;
	case FUSE_INTERRUPT: break; /* requests finish quickly; the kernel copes with none */
	case FUSE_READ: do_read(v, r, buf); break;
	case FUSE_WRITE: do_write(v, r); break;
	case FUSE_READDIR: do_readdir(v, r, buf, false); break;
	case FUSE_READDIRPLUS: do_readdir(v, r, buf, true); break;
	case FUSE_RELEASE: case FUSE_RELEASEDIR:
		vop_release(v, r->in.release.fh);
		reply_err(v, r, 0);
		break;
	case FUSE_FSYNC: case FUSE_FSYNCDIR: do_fsync(v, r); break;
	case FUSE_FALLOCATE: do_fallocate(v, r); break;
	case FUSE_LSEEK: do_lseek(v, r); break;
	case FUSE_DESTROY: reply_err(v, r, 0); break;
	/* FLUSH: nothing is buffered here (ENOSYS stops the kernel sending it, one round trip
	 * less per close); ACCESS: default_permissions checks in the guest; the rest: unused */
	default: reply_err(v, r, -ENOSYS); break;
	}
}

void fuse_invalidate(struct vfs *v, uint64_t dir_id, const char *name, uint64_t node_id)
{
	if (!__atomic_load_n(&v->inited, __ATOMIC_ACQUIRE))
		return;
	if (name) {
		struct {
			struct fuse_notify_inval_entry_out o;
			char name[NAME_MAX + 1];
		} m = { .o = { .parent = dir_id, .namelen = (uint32_t)strlen(name) } };
		if (m.o.namelen > NAME_MAX)
			return;
		memcpy(m.name, name, m.o.namelen + 1);
		chan_notify(v, FUSE_NOTIFY_INVAL_ENTRY, &m, sizeof(m.o) + m.o.namelen + 1);
	}
	if (node_id) {
		struct fuse_notify_inval_inode_out o = { .ino = node_id, .off = 0, .len = -1 };
		chan_notify(v, FUSE_NOTIFY_INVAL_INODE, &o, sizeof(o));
	}
}
