/* vfs/hooks.c - block rules and file events. A rule acts only in phase "before" with action
 * "block": a matching op fails with EPERM and emits no event. Events go into a bounded ring that
 * the rpc server drains (vfs_events_fd / vfs_event_next); a guest that outruns the reader loses
 * events (counted), never supervisor memory. */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vfs/internal.h"

int hooks_init(struct vfs *v)
{
	struct vfs_event_queue *q = &v->ev;
	pthread_mutex_init(&q->lock, NULL);
	q->efd = -1;
	if (!v->events_on)
		return 0;
	q->ring = calloc(VFS_EVENTS_MAX, sizeof(*q->ring));
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!q->ring || q->efd < 0)
		return -ENOMEM;
	return 0;
}

void hooks_free(struct vfs *v)
{
	struct vfs_event_queue *q = &v->ev;
	if (q->efd >= 0)
		close(q->efd);
	free(q->ring);
	q->ring = NULL;
	q->efd = -1;
	pthread_mutex_destroy(&q->lock);
}

bool hooks_blocked(struct vfs *v, enum vfs_op op, const char *path)
{
	for (size_t i = 0; i < v->n_rules; i++) {
		const struct vfs_rule *r = &v->rules[i];
		if (r->action != VFS_ACTION_BLOCK || r->after)
			continue;
		if (r->ops && !(r->ops & (1u << op)))
			continue;
		/* FNM_PATHNAME: '*' and '?' never match a '/', as in a shell glob */
		if (r->path && *r->path && fnmatch(r->path, path, FNM_PATHNAME) != 0)
			continue;
		__atomic_add_fetch(&v->n_blocked, 1, __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

void hooks_event(struct vfs *v, enum vfs_op op, const char *path, uint64_t size, const struct vfs_attr *a)
{
	if (!v->events_on)
		return;
	struct vfs_event_queue *q = &v->ev;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&q->lock);
	q->total++;
	if (q->len == VFS_EVENTS_MAX) {
		q->dropped++;
		pthread_mutex_unlock(&q->lock);
		return;
	}
	struct vfs_event *e = &q->ring[(q->head + q->len++) % VFS_EVENTS_MAX];
	e->op = op;
	size_t l = strlen(path);
	if (l >= sizeof(e->path))
		l = sizeof(e->path) - 1;
	memcpy(e->path, path, l);
	e->path[l] = '\0';
	e->size = size;
	e->mode = a ? a->mode : 0;
	e->uid = a ? a->uid : 0;
	e->gid = a ? a->gid : 0;
	e->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	bool wake = q->len == 1;
	pthread_mutex_unlock(&q->lock);
	if (wake) {
		uint64_t one = 1;
		if (write(q->efd, &one, sizeof(one)) < 0) {
			/* the counter is saturated: the reader has been told already */
		}
	}
}

int vfs_events_fd(struct vfs *v) { return v->events_on ? v->ev.efd : -1; }

bool vfs_event_next(struct vfs *v, struct vfs_event *ev)
{
	struct vfs_event_queue *q = &v->ev;
	if (!v->events_on)
		return false;
	pthread_mutex_lock(&q->lock);
	bool got = q->len > 0;
	if (got) {
		*ev = q->ring[q->head];
		q->head = (q->head + 1) % VFS_EVENTS_MAX;
		q->len--;
	}
	if (q->len == 0) {
		uint64_t drain;
		if (read(q->efd, &drain, sizeof(drain)) < 0) {
			/* nothing to clear (EAGAIN) */
		}
	}
	pthread_mutex_unlock(&q->lock);
	return got;
}

uint32_t vfs_go_mode(uint32_t m)
{
	/* Go's os.FileMode: permission bits low, then one bit per type and special flag */
	uint32_t g = m & 0777;
	switch (m & S_IFMT) {
	case S_IFDIR: g |= 0x80000000u; break;
	case S_IFLNK: g |= 0x08000000u; break;
	case S_IFIFO: g |= 0x02000000u; break;
	case S_IFSOCK: g |= 0x01000000u; break;
	case S_IFBLK: g |= 0x04000000u; break;
	case S_IFCHR: g |= 0x04000000u | 0x00200000u; break;
	default: break;
	}
	if (m & S_ISUID)
		g |= 0x00800000u;
	if (m & S_ISGID)
		g |= 0x00400000u;
	if (m & S_ISVTX)
		g |= 0x00100000u;
	return g;
}
