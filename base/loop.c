#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct watch {
	int fd;
	short events;
	ml_io_fn fn;
	void *arg;
	bool dead;
};

struct timer {
	int id;
	int64_t due;
	ml_timer_fn fn;
	void *arg;
};

struct ml_loop {
	struct watch *w;
	size_t nw, capw;
	struct timer *t;
	size_t nt, capt;
	int next_id;
	bool stop;
};

int64_t ml_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ml_loop_new(struct ml_loop **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void ml_loop_free(struct ml_loop *l)
{
	if (!l)
		return;
	free(l->w);
	free(l->t);
	free(l);
}

static struct watch *find_watch(struct ml_loop *l, int fd)
{
	for (size_t i = 0; i < l->nw; i++)
		if (l->w[i].fd == fd && !l->w[i].dead)
			return &l->w[i];
	return NULL;
}

int ml_loop_watch(struct ml_loop *l, int fd, short events, ml_io_fn fn, void *arg)
{
	struct watch *w = find_watch(l, fd);
	if (!w) {
		if (l->nw == l->capw) {
			size_t n = l->capw ? l->capw * 2 : 16;
			struct watch *nw = realloc(l->w, n * sizeof(*nw));
			if (!nw)
				return -ENOMEM;
			l->w = nw;
			l->capw = n;
		}
		w = &l->w[l->nw++];
	}
	*w = (struct watch){ .fd = fd, .events = events, .fn = fn, .arg = arg };
	return 0;
}

void ml_loop_events(struct ml_loop *l, int fd, short events)
{
	struct watch *w = find_watch(l, fd);
	if (w)
		w->events = events;
}

/* Marked dead, compacted after the dispatch pass, so removal during a callback is safe. */
void ml_loop_unwatch(struct ml_loop *l, int fd)
{
	struct watch *w = find_watch(l, fd);
	if (w)
		w->dead = true;
}

int ml_loop_timer(struct ml_loop *l, int64_t ms, ml_timer_fn fn, void *arg)
{
	if (l->nt == l->capt) {
		size_t n = l->capt ? l->capt * 2 : 8;
		struct timer *nt = realloc(l->t, n * sizeof(*nt));
		if (!nt)
			return -ENOMEM;
		l->t = nt;
		l->capt = n;
	}
	int id = ++l->next_id;
	l->t[l->nt++] = (struct timer){ .id = id, .due = ml_now_ms() + ms, .fn = fn, .arg = arg };
	return id;
}

void ml_loop_cancel(struct ml_loop *l, int id)
{
	for (size_t i = 0; i < l->nt; i++)
		if (l->t[i].id == id) {
			l->t[i] = l->t[--l->nt];
			return;
		}
}

void ml_loop_stop(struct ml_loop *l) { l->stop = true; }

static int next_timeout(struct ml_loop *l)
{
	if (l->nt == 0)
		return -1;
	int64_t now = ml_now_ms(), min = INT64_MAX;
	for (size_t i = 0; i < l->nt; i++)
		if (l->t[i].due < min)
			min = l->t[i].due;
	return min <= now ? 0 : (int)(min - now > 60000 ? 60000 : min - now);
}

static void fire_timers(struct ml_loop *l)
{
	int64_t now = ml_now_ms();
	for (size_t i = 0; i < l->nt;) {
		if (l->t[i].due > now) {
			i++;
			continue;
		}
		struct timer t = l->t[i];
		l->t[i] = l->t[--l->nt];
		t.fn(l, t.arg); /* may add or cancel timers: restart the scan */
		i = 0;
		now = ml_now_ms();
	}
}

static void compact(struct ml_loop *l)
{
	size_t j = 0;
	for (size_t i = 0; i < l->nw; i++)
		if (!l->w[i].dead)
			l->w[j++] = l->w[i];
	l->nw = j;
}

static int run_once(struct ml_loop *l)
{
	size_t n = l->nw;
	struct pollfd *p = calloc(n ? n : 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = l->w[i].dead ? -1 : l->w[i].fd, .events = l->w[i].events };
	int r = poll(p, n, next_timeout(l));
	if (r < 0 && errno != EINTR) {
		r = -errno;
		free(p);
		return r;
	}
	for (size_t i = 0; r > 0 && i < n && !l->stop; i++) {
		if (!p[i].revents || l->w[i].dead || l->w[i].fd != p[i].fd)
			continue;
		l->w[i].fn(l, p[i].fd, p[i].revents, l->w[i].arg);
	}
	free(p);
	compact(l);
	if (!l->stop)
		fire_timers(l);
	return 0;
}

int ml_loop_run(struct ml_loop *l)
{
	l->stop = false;
	while (!l->stop) {
		int r = run_once(l);
		if (r < 0)
			return r;
	}
	return 0;
}
