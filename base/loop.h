/* base/loop.h - a small poll(2) event loop: fd callbacks plus one-shot timers.
 * poll, not epoll, because the fds we watch include regular files (stdout redirected to a file),
 * which epoll refuses. Single-threaded; callbacks may add and remove fds and timers. */
#ifndef ML_BASE_LOOP_H
#define ML_BASE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ml_loop;
typedef void (*ml_io_fn)(struct ml_loop *l, int fd, short revents, void *arg);
typedef void (*ml_timer_fn)(struct ml_loop *l, void *arg);

int ml_loop_new(struct ml_loop **out);
void ml_loop_free(struct ml_loop *l);
/* Watch fd for events (POLLIN/POLLOUT). Replaces an existing watch on the same fd. */
int ml_loop_watch(struct ml_loop *l, int fd, short events, ml_io_fn fn, void *arg);
/* Change the event mask of a watched fd (0 = keep it but wait for nothing). */
void ml_loop_events(struct ml_loop *l, int fd, short events);
void ml_loop_unwatch(struct ml_loop *l, int fd);
/* One-shot timer after ms milliseconds; returns an id > 0 for ml_loop_cancel. */
int ml_loop_timer(struct ml_loop *l, int64_t ms, ml_timer_fn fn, void *arg);
void ml_loop_cancel(struct ml_loop *l, int id);
/* Runs until ml_loop_stop() is called. Returns 0, or -errno if poll failed. */
int ml_loop_run(struct ml_loop *l);
void ml_loop_stop(struct ml_loop *l);
int64_t ml_now_ms(void);

#endif
