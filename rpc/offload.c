/* rpc/offload.c - work that may block (the workspace's files API waits for the guest kernel to
 * drop its caches) runs on a short-lived thread of its own; its result is handed back to the
 * loop, which answers the request. The VM is not torn down while such a thread runs: closing
 * it joins them first (rpc_offload_join_all). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc/server_internal.h"

struct offload {
	struct rpc_server *srv;
	struct offload *next;
	pthread_t thread;
	void (*fn)(void *arg);
	void (*done)(void *arg);
	void *arg;
};

static void finish(struct rpc_server *s, struct offload *o)
{
	for (struct offload **p = &s->offloads; *p; p = &(*p)->next)
		if (*p == o) {
			*p = o->next;
			break;
		}
	pthread_join(o->thread, NULL);
	o->done(o->arg);
	free(o);
}

static void on_done(struct ml_loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)rev;
	struct rpc_server *s = arg;
	struct offload *o;
	while (read(fd, &o, sizeof(o)) == (ssize_t)sizeof(o))
		finish(s, o);
}

static void *run(void *arg)
{
	struct offload *o = arg;
	o->fn(o->arg);
	/* a pointer is far below PIPE_BUF: the write is atomic */
	while (write(o->srv->offload_pipe[1], &o, sizeof(o)) < 0 && errno == EINTR)
		;
	return NULL;
}

int rpc_offload(struct rpc_server *s, void (*fn)(void *), void (*done)(void *), void *arg)
{
	if (s->offload_pipe[0] < 0) {
		if (pipe2(s->offload_pipe, O_CLOEXEC) < 0)
			return -errno;
		fcntl(s->offload_pipe[0], F_SETFL, O_NONBLOCK);
		ml_loop_watch(s->o.loop, s->offload_pipe[0], POLLIN, on_done, s);
	}
	struct offload *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	*o = (struct offload){ .srv = s, .fn = fn, .done = done, .arg = arg, .next = s->offloads };
	int r = -pthread_create(&o->thread, NULL, run, o);
	if (r < 0) {
		free(o);
		return r;
	}
	s->offloads = o;
	return 0;
}

void rpc_offload_join_all(struct rpc_server *s)
{
	if (!s->offloads)
		return;
	for (struct offload *o = s->offloads; o; o = o->next)
		pthread_join(o->thread, NULL);
	/* every thread has written its pointer: the pipe holds exactly these, drop them */
	struct offload *x;
	while (read(s->offload_pipe[0], &x, sizeof(x)) == (ssize_t)sizeof(x))
		;
	while (s->offloads) {
		struct offload *o = s->offloads;
		s->offloads = o->next;
		o->done(o->arg);
		free(o);
	}
}

void rpc_offload_close(struct rpc_server *s)
{
	rpc_offload_join_all(s);
	if (s->offload_pipe[0] >= 0) {
		ml_loop_unwatch(s->o.loop, s->offload_pipe[0]);
		close(s->offload_pipe[0]);
		close(s->offload_pipe[1]);
	}
	s->offload_pipe[0] = s->offload_pipe[1] = -1;
}
