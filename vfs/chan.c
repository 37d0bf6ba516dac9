/* vfs/chan.c - the files channel: a byte stream of FUSE requests from the guest, replies back,
 * served by a pool of worker threads.
 *
 * Theory of operation. The guest's agent is a pump: what the guest kernel puts in /dev/fuse
 * comes here unchanged (each message starts with fuse_in_header, whose len says where the next
 * one begins), and what we write goes back into /dev/fuse (each reply carries the request's
 * unique id, so replies may come in any order). Requests are therefore pipelined: as many are
 * in flight as the guest kernel sends, and a slow one holds up only its own worker.
 *
 * The workers take turns as the reader (leader/follower): the one holding the read token reads
 * exactly one message into its own buffer (header, then the rest: no copy, no queue hand-off),
 * passes the token on, and serves the message itself. So the bounded request queue is the
 * workers themselves: at most `workers` requests are being served, and while all are busy
 * nobody reads, the socket fills, QEMU stops taking from the virtqueue, and the guest kernel's
 * FUSE queue waits: back-pressure all the way to the guest, with the supervisor's own loop
 * untouched (it never runs here).
 *
 * A message whose length is out of bounds means the stream is no longer framed: the channel is
 * closed for good (the guest's workspace fails; the VM and the supervisor go on). A message
 * that is framed but malformed gets an error reply. Replies are written whole under one lock
 * (writev, retried on partial writes). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "vfs/internal.h"

struct worker {
	struct vfs *v;
	pthread_t t;
	uint8_t *req, *rep;
};

static int read_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_iov(int fd, struct iovec *iov, int cnt)
{
	while (cnt) {
		ssize_t w = writev(fd, iov, cnt);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		while (cnt && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int send_msg(struct vfs *v, const struct fuse_out_header *h, const void *a, size_t alen,
		    const void *b, size_t blen)
{
	struct iovec iov[3] = { { (void *)h, sizeof(*h) }, { (void *)a, alen }, { (void *)b, blen } };
	pthread_mutex_lock(&v->wr_mu);
	int r = __atomic_load_n(&v->stopping, __ATOMIC_ACQUIRE) ? -EPIPE : write_iov(v->fd, iov, 3);
	pthread_mutex_unlock(&v->wr_mu);
	return r;
}

int chan_reply2(struct vfs *v, uint64_t unique, int error, const void *a, size_t alen,
		const void *b, size_t blen)
{
	if (error < 0)
		__atomic_add_fetch(&v->n_errors, 1, __ATOMIC_RELAXED);
	if (error < 0)
		alen = blen = 0;
	struct fuse_out_header h = { .len = (uint32_t)(sizeof(h) + alen + blen), .error = error, .unique = unique };
	return send_msg(v, &h, a, alen, b, blen);
}

int chan_reply(struct vfs *v, uint64_t unique, int error, const void *data, size_t len)
{
	return chan_reply2(v, unique, error, data, len, NULL, 0);
}

int chan_notify(struct vfs *v, int code, const void *data, size_t len)
{
	struct fuse_out_header h = { .len = (uint32_t)(sizeof(h) + len), .error = code, .unique = 0 };
	return send_msg(v, &h, data, len, NULL, 0);
}

int chan_sync(struct vfs *v, int timeout_ms)
{
	if (!__atomic_load_n(&v->inited, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&v->sync_mu);
	uint64_t seq = ++v->sync_sent;
	pthread_mutex_unlock(&v->sync_mu);
	int r = chan_notify(v, VFS_NOTIFY_SYNC, &seq, sizeof(seq));
	if (r < 0)
		return r;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&v->sync_mu);
	while (v->sync_acked < seq && !__atomic_load_n(&v->stopping, __ATOMIC_ACQUIRE) && r == 0)
		r = -pthread_cond_timedwait(&v->sync_cv, &v->sync_mu, &dl);
	pthread_mutex_unlock(&v->sync_mu);
	return r;
}

/* Reads one whole message into w->req; its length in *len. <0: the stream is over or broken. */
static int read_message(struct worker *w, size_t *len)
{
	struct vfs *v = w->v;
	int r = read_full(v->fd, w->req, VFS_HDR_LEN);
	if (r < 0)
		return r;
	uint32_t l;
	memcpy(&l, w->req, sizeof(l));
	if (l < VFS_HDR_LEN || l > VFS_REQ_MAX) {
		ml_error("vfs: the guest sent a message of %u bytes (%u..%u allowed): closing the files channel",
			 l, VFS_HDR_LEN, VFS_REQ_MAX);
		return -EPROTO;
	}
	if ((r = read_full(v->fd, w->req + VFS_HDR_LEN, l - VFS_HDR_LEN)) < 0)
		return r;
	*len = l;
	return 0;
}

static void serve(struct worker *w, size_t len)
{
	struct vfs *v = w->v;
	uint64_t n = __atomic_add_fetch(&v->inflight, 1, __ATOMIC_RELAXED);
	uint64_t max = __atomic_load_n(&v->max_inflight, __ATOMIC_RELAXED);
	while (n > max && !__atomic_compare_exchange_n(&v->max_inflight, &max, n, false,
						       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	__atomic_add_fetch(&v->n_requests, 1, __ATOMIC_RELAXED);
	struct vfs_req r;
	int err = vfs_req_decode(w->req, len, &r);
	if (err < 0) {
		ml_debug("vfs: request opcode %u: %s", r.h.opcode, strerror(-err));
		if (!vfs_req_no_reply(r.h.opcode))
			chan_reply(v, r.h.unique, err, NULL, 0);
	} else {
		fuse_dispatch(v, &r, w->rep);
	}
	__atomic_sub_fetch(&v->inflight, 1, __ATOMIC_RELAXED);
}

static void stop_all(struct vfs *v)
{
	__atomic_store_n(&v->stopping, true, __ATOMIC_RELEASE);
	pthread_mutex_lock(&v->sync_mu);
	pthread_cond_broadcast(&v->sync_cv);
	pthread_mutex_unlock(&v->sync_mu);
	shutdown(v->fd, SHUT_RDWR);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct vfs *v = w->v;
	for (;;) {
		pthread_mutex_lock(&v->rd_mu); /* the read token */
		size_t len = 0;
		int r = __atomic_load_n(&v->stopping, __ATOMIC_ACQUIRE) ? -EPIPE : read_message(w, &len);
		/* the agent's hello (the owner of the files) must be in place before any request
		 * behind it is served: it is served before the token is passed on */
		uint32_t op = 0;
		if (r == 0)
			memcpy(&op, w->req + offsetof(struct fuse_in_header, opcode), sizeof(op));
		if (r == 0 && op == VFS_AGENT_HELLO) {
			serve(w, len);
			len = 0;
		}
		pthread_mutex_unlock(&v->rd_mu);
		if (r < 0) {
			if (r != -EPIPE && !__atomic_load_n(&v->stopping, __ATOMIC_ACQUIRE))
				ml_warn("vfs: files channel: %s", strerror(-r));
			stop_all(v);
			break;
		}
		if (len)
			serve(w, len);
	}
	free(w->req);
	free(w->rep);
	free(w);
	return NULL;
}

int vfs_start(struct vfs *v, int fd, struct ml_err *e)
{
	if (v->threads)
		return ml_err_set(e, -EALREADY, "vfs: already serving");
	/* the workers block in read and write; this fd is theirs alone */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return ml_err_set(e, -errno, "files channel: %s", strerror(errno));
	v->fd = fd;
	v->threads = calloc(v->workers, sizeof(*v->threads));
	if (!v->threads)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < v->workers; i++) {
		struct worker *w = calloc(1, sizeof(*w));
		if (w) {
			w->v = v;
			w->req = malloc(VFS_REQ_MAX);
			w->rep = malloc(VFS_REQ_MAX);
		}
		if (!w || !w->req || !w->rep || pthread_create(&v->threads[i], NULL, worker_main, w) != 0) {
			if (w) {
				free(w->req);
				free(w->rep);
			}
			free(w);
			vfs_stop(v);
			return ml_err_set(e, -ENOMEM, "vfs: cannot start its workers");
		}
		v->n_threads++;
	}
	return 0;
}

void vfs_stop(struct vfs *v)
{
	if (!v || !v->threads)
		return;
	stop_all(v);
	for (size_t i = 0; i < v->n_threads; i++)
		pthread_join(v->threads[i], NULL);
	free(v->threads);
	v->threads = NULL;
	v->n_threads = 0;
	struct vfs_stats st;
	vfs_get_stats(v, &st);
	ml_info("vfs: %llu requests (%llu failed, %llu blocked by rules), at most %llu in flight; "
		"%llu events (%llu dropped); %llu nodes, %llu open files at the end",
		(unsigned long long)st.requests, (unsigned long long)st.errors, (unsigned long long)st.blocked,
		(unsigned long long)st.max_inflight, (unsigned long long)st.events,
		(unsigned long long)st.events_dropped, (unsigned long long)st.nodes, (unsigned long long)st.handles);
}
