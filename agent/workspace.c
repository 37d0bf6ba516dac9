/* agent/workspace.c - the guest end of the workspace (CFG_WORKSPACE): the kernel's FUSE client
 * mounted at the workspace path, and a pump between /dev/fuse and the files channel. All FUSE
 * semantics live in the supervisor (vfs/); here bytes only move:
 *
 *   up:   read(/dev/fuse) -> one request -> write(files port)      (thread "up")
 *   down: read(files port) -> cut at fuse_out_header.len -> write(/dev/fuse), one per message
 *                                                                      (thread "down")
 *   acks: FILES_NOTIFY_SYNC from the host -> FILES_AGENT_SYNC_ACK     (thread "ack")
 *
 * Replies carry the request's unique id, so the host answers in any order and many requests
 * are in flight. The pump threads belong to PID 1, which nothing in the guest can kill. The
 * "down" thread never writes to the port: if it ever waited for the port while the host waited
 * for it to take replies, both would stop; acks go through their own thread instead.
 * Back-pressure is the kernel's: while the host does not read, "up" waits for the port and new
 * requests wait in /dev/fuse. The port is nonblocking (waits are poll()s): a blocking
 * virtio-serial write spins in the guest kernel until the host has taken the buffer. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#define FUSE_BUF ((1u << 20) + (64u << 10)) /* max_write (1 MiB) and the request headers */
#define DOWN_MAX ((1u << 20) + (64u << 10)) /* largest message the host sends */
#define PORT_WAIT_MS 10000

static struct {
	int fuse, port;
	pthread_mutex_t wr;          /* one writer at a time on the port */
	pthread_mutex_t ack_mu;
	pthread_cond_t ack_cv;
	uint64_t ack_want, ack_sent; /* highest sync seen / answered */
} P = { -1, -1, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

/* The port is nonblocking: a blocking virtio-serial write busy-waits in the guest kernel until
 * the host has taken the buffer, which under an emulated CPU starves the very host threads it
 * waits for. Here a full port waits in poll() instead. */
static int port_write(const void *p, size_t n)
{
	const uint8_t *b = p;
	int r = 0;
	pthread_mutex_lock(&P.wr);
	while (n > 0) {
		ssize_t w = write(P.port, b, n);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN) {
			r = -errno;
			break;
		}
		struct pollfd pfd = { .fd = P.port, .events = POLLOUT };
		poll(&pfd, 1, 100);
	}
	pthread_mutex_unlock(&P.wr);
	return r;
}

static void *pump_up(void *arg)
{
	(void)arg;
	uint8_t *buf = malloc(FUSE_BUF);
	if (!buf) {
		ml_error("workspace: out of memory");
		return NULL;
	}
	for (;;) {
		ssize_t n = read(P.fuse, buf, FUSE_BUF);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
			continue; /* ENOENT: the request was interrupted before we read it */
		if (n < 0) {
			if (errno != ENODEV)
				ml_error("workspace: read /dev/fuse: %s", strerror(errno));
			break; /* ENODEV: unmounted */
		}
		if (n > 0 && port_write(buf, (size_t)n) < 0)
			ml_error("workspace: write to the files channel: %s", strerror(errno));
	}
	free(buf);
	return NULL;
}

static void *ack_loop(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&P.ack_mu);
		while (P.ack_want == P.ack_sent)
			pthread_cond_wait(&P.ack_cv, &P.ack_mu);
		uint64_t seq = P.ack_want;
		P.ack_sent = seq;
		pthread_mutex_unlock(&P.ack_mu);
		struct {
			struct fuse_in_header h;
			uint64_t seq;
		} __attribute__((packed)) m = { .h = { .len = sizeof(m), .opcode = FILES_AGENT_SYNC_ACK }, .seq = seq };
		port_write(&m, sizeof(m));
	}
	return NULL;
}

/* One message from the host: a reply or notification for the kernel, or our sync. */
static void deliver(const uint8_t *msg, uint32_t len)
{
	struct fuse_out_header h;
	memcpy(&h, msg, sizeof(h));
	if (h.unique == 0 && h.error == FILES_NOTIFY_SYNC && len == sizeof(h) + 8) {
		uint64_t seq;
		memcpy(&seq, msg + sizeof(h), sizeof(seq));
		pthread_mutex_lock(&P.ack_mu);
		if (seq > P.ack_want)
			P.ack_want = seq;
		pthread_cond_signal(&P.ack_cv);
		pthread_mutex_unlock(&P.ack_mu);
		return;
	}
	/* ENOENT: the request was interrupted or the node is unknown; the kernel dropped it */
	if (write(P.fuse, msg, len) < 0 && errno != ENOENT)
		ml_debug("workspace: write /dev/fuse: %s", strerror(errno));
}

static void *pump_down(void *arg)
{
	(void)arg;
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	size_t cap = 2 * DOWN_MAX, off = 0, len = 0;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		ml_error("workspace: out of memory");
		return NULL;
	}
	for (;;) {
		/* keep room for a whole message after what is buffered (cap is two of them) */
		if (len == 0) {
			off = 0;
		} else if (cap - off - len < DOWN_MAX) {
			memmove(buf, buf + off, len);
			off = 0;
		}
		struct pollfd pfd = { .fd = P.port, .events = POLLIN };
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			ml_error("workspace: poll the files channel: %s", strerror(errno));
		ssize_t n = read(P.port, buf + off + len, cap - off - len);
		if (n <= 0) {
			/* 0: no host end connected (virtio-serial); retry, never close the port */
			if (n == 0 || errno == EAGAIN || errno == EINTR)
				nanosleep(&tick, NULL);
			else
				ml_error("workspace: read the files channel: %s", strerror(errno));
			continue;
		}
		len += (size_t)n;
		while (len >= sizeof(struct fuse_out_header)) {
			uint32_t l;
			memcpy(&l, buf + off, sizeof(l));
			if (l < sizeof(struct fuse_out_header) || l > DOWN_MAX) {
				ml_error("workspace: the host sent a %u-byte message: the files channel is broken", l);
				free(buf);
				return NULL;
			}
			if (len < l)
				break;
			deliver(buf + off, l);
			off += l;
			len -= l;
		}
	}
}

static int start_thread(void *(*fn)(void *), struct ml_err *e)
{
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int r = pthread_create(&t, &a, fn, NULL);
	pthread_attr_destroy(&a);
	return r ? ml_err_set(e, -r, "workspace: start the pump: %s", strerror(r)) : 0;
}

/* The owner spec resolved against the image (after the root switch): the host shows files it
 * holds no guest owner for as owned by this user. */
static void resolve_owner(const char *spec, uint32_t *uid, uint32_t *gid)
{
	*uid = *gid = 0;
	if (!spec || !*spec)
		return;
	struct user_ids u;
	struct ml_err e = { 0, "" };
	if (user_resolve("/etc", spec, &u, &e) < 0) {
		ml_warn("workspace: owner %s: %s (files show as root's)", spec, e.msg);
		return;
	}
	*uid = u.uid;
	*gid = u.gid;
	user_ids_free(&u);
}

static int send_hello(uint32_t uid, uint32_t gid)
{
	struct {
		struct fuse_in_header h;
		uint32_t version, uid, gid;
	} __attribute__((packed)) m = { .h = { .len = sizeof(m), .opcode = FILES_AGENT_HELLO },
					.version = FILES_AGENT_VERSION, .uid = uid, .gid = gid };
	return port_write(&m, sizeof(m));
}

int workspace_mount(const struct proto_config *c, struct ml_err *e)
{
	if (!c->ws_path)
		return 0;
	uint32_t uid, gid;
	resolve_owner(c->ws_owner, &uid, &gid);
	P.port = boot_open_port(PROTO_PORT_FILES, PORT_WAIT_MS, e);
	if (P.port < 0)
		return ml_err_wrap(e, "workspace");
	int r = mkdir_p(c->ws_path, 0755);
	if (r < 0)
		return ml_err_set(e, r, "workspace: create %s: %s", c->ws_path, strerror(-r));
	P.fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (P.fuse < 0)
		return ml_err_set(e, -errno, "workspace: open /dev/fuse: %s", strerror(errno));
	/* before the mount, so the host knows the owner by the time FUSE_INIT arrives */
	if (send_hello(uid, gid) < 0)
		return ml_err_set(e, -errno, "workspace: the files channel: %s", strerror(errno));
	char opts[160];
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,"
		 "default_permissions,max_read=%u", P.fuse, 1u << 20);
	/* nosuid: a set-uid file in the workspace gains no privilege; nodev: no device nodes */
	if (mount("matchlock", c->ws_path, "fuse.matchlock", MS_NOSUID | MS_NODEV, opts) < 0)
		return ml_err_set(e, -errno, "workspace: mount %s: %s", c->ws_path, strerror(errno));
	r = start_thread(pump_down, e);
	if (r == 0)
		r = start_thread(ack_loop, e);
	if (r == 0)
		r = start_thread(pump_up, e);
	if (r == 0)
		ml_info("workspace mounted at %s (owner %u:%u)", c->ws_path, uid, gid);
	return r;
}
