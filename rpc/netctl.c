/* rpc/netctl.c - the network thread's control calls and its event queue.
 *
 * slirpnet and mitm are single-threaded and belong to the network thread, so a control call
 * from another thread (the RPC server, the CLI's allow-list / port-forward relay) does not
 * touch them: it parks a command in n->cmd, wakes the thread through an eventfd and waits on a
 * condition variable; the thread runs the command between two poll rounds (never inside a
 * slirpnet or mitm callback) and marks it done. One command at a time (call_lock), so calls
 * are served in order, as the RPC protocol serializes allow-list and port-forward requests.
 *
 * Events go the other way: mitm reports each verdict on the network thread; they are copied
 * into a bounded ring (NET_EVENTS_MAX) under the lock, and an eventfd is readable exactly
 * while the ring is not empty, so a consumer can poll it next to its other fds. A full ring
 * drops the new event and counts it: the guest can make events as fast as it can send SYNs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "rpc/net_internal.h"

int netctl_init(struct net *n, struct ml_err *e)
{
	n->cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->ev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->evq = calloc(NET_EVENTS_MAX, sizeof(*n->evq));
	if (n->cmd_fd < 0 || n->ev_fd < 0 || !n->evq)
		return ml_err_set(e, -ENOMEM, "guest network: out of resources");
	if (pthread_mutex_init(&n->call_lock, NULL) || pthread_mutex_init(&n->lock, NULL) ||
	    pthread_cond_init(&n->cond, NULL))
		return ml_err_set(e, -ENOMEM, "guest network: out of resources");
	n->sync_init = true;
	return 0;
}

void netctl_free(struct net *n)
{
	if (n->sync_init) {
		pthread_cond_destroy(&n->cond);
		pthread_mutex_destroy(&n->lock);
		pthread_mutex_destroy(&n->call_lock);
	}
	if (n->cmd_fd >= 0)
		close(n->cmd_fd);
	if (n->ev_fd >= 0)
		close(n->ev_fd);
	free(n->evq);
}

/* ---- forwards ---- */

static void fmt_addr(const struct net_publish *p, int port, char *out, size_t cap)
{
	char a[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &p->addr, a, sizeof(a));
	snprintf(out, cap, "%s:%d", a, port);
}

static void forwards_clear(struct net *n)
{
	for (size_t i = 0; i < n->n_fwds; i++)
		if (slirpnet_remove_hostfwd(n->sn, n->fwds[i].addr, n->fwds[i].host_port) < 0)
			ml_warn("net: port forward %d was already gone", n->fwds[i].host_port);
	n->n_fwds = 0;
}

static int check_duplicates(const struct net_publish *fwd, size_t n_fwd, bool at_start, struct ml_err *e)
{
	char a[64];

	for (size_t i = 0; i < n_fwd; i++)
		for (size_t j = 0; j < i; j++)
			if (fwd[i].host_port && fwd[i].host_port == fwd[j].host_port &&
			    fwd[i].addr.s_addr == fwd[j].addr.s_addr) {
				fmt_addr(&fwd[i], fwd[i].host_port, a, sizeof(a));
				return ml_err_set(e, -EINVAL, "%s: duplicate listen address %s",
						  at_start ? "start port-forward listener" :
							     "bind local port-forward listener", a);
			}
	return 0;
}

int netctl_forwards_set(struct net *n, const struct net_publish *fwd, size_t n_fwd, struct net_publish *bound,
			bool at_start, struct ml_err *e)
{
	char a[64];
	int r;

	if (n_fwd > NET_FORWARDS_MAX)
		return ml_err_set(e, -E2BIG, "too many port forwards (%zu, at most %d)", n_fwd, NET_FORWARDS_MAX);
	if ((r = check_duplicates(fwd, n_fwd, at_start, e)) < 0)
		return r;
	/* The previous listeners go first, so a new set may reuse their ports. */
	forwards_clear(n);
	for (size_t i = 0; i < n_fwd; i++) {
		int port = 0;
		if ((r = slirpnet_add_hostfwd(n->sn, fwd[i].addr, fwd[i].host_port, fwd[i].guest_port, &port, e)) < 0) {
			forwards_clear(n);
			fmt_addr(&fwd[i], fwd[i].host_port, a, sizeof(a));
			return at_start ? ml_err_wrap(e, "start port-forward listener")
					: ml_err_wrap(e, "bind local port-forward listener %s", a);
		}
		n->fwds[n->n_fwds++] = (struct net_publish){ fwd[i].addr, port, fwd[i].guest_port };
		if (bound)
			bound[i] = n->fwds[n->n_fwds - 1];
	}
	return 0;
}

/* ---- commands ---- */

static int run_allow(struct net *n, struct net_cmd *c)
{
	int r = 0;

	if (c->op != NET_ALLOW_GET) {
		enum mitm_allow_op op = c->op == NET_ALLOW_SET ? MITM_ALLOW_SET :
					c->op == NET_ALLOW_ADD ? MITM_ALLOW_ADD : MITM_ALLOW_DELETE;
		r = mitm_allow_update(n->m, op, c->hosts, c->n_hosts, c->changed, c->e);
	}
	if (r == 0 && c->current && mitm_allow_list(n->m, c->current) < 0) {
		if (c->changed) {
			strv_free(*c->changed);
			*c->changed = NULL;
		}
		r = ml_err_set(c->e, -ENOMEM, "allow-list: out of memory");
	}
	return r;
}

void netctl_serve(struct net *n)
{
	uint64_t v;
	struct net_cmd *c;

	if (read(n->cmd_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		ml_warn("net: reading the command eventfd: %s", strerror(errno));
	pthread_mutex_lock(&n->lock);
	c = n->cmd;
	pthread_mutex_unlock(&n->lock);
	if (!c || c->done)
		return;
	/* The caller waits on the condition variable, so c is stable until done is set. */
	c->result = c->kind == NET_CMD_ALLOW ? run_allow(n, c)
					      : netctl_forwards_set(n, c->fwd, c->n_fwd, c->bound, false, c->e);
	pthread_mutex_lock(&n->lock);
	c->done = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

void netctl_thread_done(struct net *n)
{
	pthread_mutex_lock(&n->lock);
	n->thread_done = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

static int call(struct net *n, struct net_cmd *c)
{
	uint64_t one = 1;
	int r;

	pthread_mutex_lock(&n->call_lock);
	pthread_mutex_lock(&n->lock);
	if (!n->thread_done) {
		n->cmd = c;
		if (write(n->cmd_fd, &one, sizeof(one)) < 0)
			ml_warn("net: waking the network thread: %s", strerror(errno));
		while (!c->done && !n->thread_done)
			pthread_cond_wait(&n->cond, &n->lock);
		n->cmd = NULL;
	}
	r = c->done ? c->result : ml_err_set(c->e, -ESHUTDOWN, "the sandbox's network has stopped");
	pthread_mutex_unlock(&n->lock);
	pthread_mutex_unlock(&n->call_lock);
	return r;
}

int net_allow_list(struct net *n, enum net_allow_op op, char *const *hosts, size_t n_hosts,
		   char ***changed, char ***current, struct ml_err *e)
{
	struct net_cmd c = { .kind = NET_CMD_ALLOW, .op = op, .hosts = hosts, .n_hosts = n_hosts,
			     .changed = changed, .current = current, .e = e };

	if (changed)
		*changed = NULL;
	if (current)
		*current = NULL;
	return call(n, &c);
}

int net_forwards_set(struct net *n, const struct net_publish *fwd, size_t n_fwd, struct net_publish *bound,
		     struct ml_err *e)
{
	struct net_cmd c = { .kind = NET_CMD_FORWARDS, .fwd = fwd, .n_fwd = n_fwd, .bound = bound, .e = e };

	return call(n, &c);
}

/* ---- events ---- */

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends one event to the bounded queue (full: counted as dropped); the first one queued
 * wakes the reader. */
static void event_push(struct net *n, const struct net_event *ev)
{
	uint64_t one = 1;

	pthread_mutex_lock(&n->lock);
	if (n->ev_count == NET_EVENTS_MAX)
		n->ev_dropped++;
	else {
		n->evq[(n->ev_head + n->ev_count) % NET_EVENTS_MAX] = *ev;
		if (n->ev_count++ == 0 && write(n->ev_fd, &one, sizeof(one)) < 0)
			ml_warn("net: signalling an event: %s", strerror(errno));
	}
	pthread_mutex_unlock(&n->lock);
}

void netctl_on_event(void *arg, const struct mitm_event *ev)
{
	struct net_event out = { .unix_ms = unix_ms(), .dns = ev->dns, .blocked = ev->blocked,
				 .dst = ev->dst, .qtype = ev->qtype };

	snprintf(out.host, sizeof(out.host), "%s", ev->host ? ev->host : "");
	snprintf(out.reason, sizeof(out.reason), "%s", ev->reason ? ev->reason : "");
	event_push(arg, &out);
}

void netctl_on_http_event(void *arg, const struct mitm_http_event *ev)
{
	struct net_event out = { .unix_ms = ev->time_ms, .http = true, .blocked = ev->blocked,
				 .status = ev->status, .request_bytes = ev->request_bytes,
				 .response_bytes = ev->response_bytes, .duration_ms = ev->duration_ms };

	snprintf(out.host, sizeof(out.host), "%s", ev->host);
	snprintf(out.reason, sizeof(out.reason), "%s", ev->reason);
	snprintf(out.method, sizeof(out.method), "%s", ev->method);
	snprintf(out.url, sizeof(out.url), "%s", ev->url);
	event_push(arg, &out);
}

int net_events_fd(const struct net *n)
{
	return n->ev_fd;
}

size_t net_events_read(struct net *n, struct net_event *out, size_t max, uint64_t *dropped)
{
	size_t k = 0;
	uint64_t v;

	pthread_mutex_lock(&n->lock);
	while (k < max && n->ev_count) {
		out[k++] = n->evq[n->ev_head];
		n->ev_head = (n->ev_head + 1) % NET_EVENTS_MAX;
		n->ev_count--;
	}
	if (!n->ev_count && read(n->ev_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		ml_warn("net: draining the event eventfd: %s", strerror(errno));
	if (dropped)
		*dropped = n->ev_dropped;
	pthread_mutex_unlock(&n->lock);
	return k;
}
