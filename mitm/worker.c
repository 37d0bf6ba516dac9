/* mitm/worker.c - the work the network thread must not wait for: host-side name lookups
 * (getaddrinfo blocks for as long as DNS takes) and SDK hook callbacks (a Unix-socket
 * exchange with no deadline unless the rule gives one).
 *
 * A small pool of detached threads (spawned on demand, at most WORKER_THREADS) takes jobs
 * from a bounded queue and puts them on a done list; an eventfd in the network thread's poll
 * says "some are done". A flow that ends while its job runs marks it orphaned and forgets it;
 * whoever sees it last frees it. The shared state is freed by the last of worker_free and the
 * threads, so stopping a VM never waits for a slow lookup or a callback that never answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/callback.h"
#include "mitm/intercept.h"

#define WORKER_THREADS 8
#define WORKER_QUEUE_MAX 256

int (*mitm_resolve_hook)(const char *name, struct in_addr *out, int max);

struct worker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *queue, **queue_tail;
	struct job *done;
	unsigned queued, threads, idle, refs;
	bool closing;
	int efd;      /* "some jobs are done", read by the network thread */
	int stopfd;   /* written once at worker_free: callbacks in flight give up */
};

void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->sock_path);
	free(j->request);
	free(j->response);
	free(j);
}

static int resolve(const char *name, struct in_addr *out, int max)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res, *a;
	int n = 0, r;

	if (mitm_resolve_hook)
		return mitm_resolve_hook(name, out, max);
	r = getaddrinfo(name, NULL, &hints, &res);
	if (r == EAI_NONAME || r == EAI_NODATA)
		return -ENOENT;
	if (r)
		return -EHOSTUNREACH;
	for (a = res; a && n < max; a = a->ai_next)
		if (a->ai_family == AF_INET)
			out[n++] = ((struct sockaddr_in *)a->ai_addr)->sin_addr;
	freeaddrinfo(res);
	return n ? n : -ENOENT;
}

static void run_job(struct worker *w, struct job *j)
{
	if (j->kind == JOB_RESOLVE) {
		int n = resolve(j->name, j->addrs, ICPT_MAX_ADDRS);

		j->n_addrs = n > 0 ? n : 0;
		j->err = n > 0 ? 0 : n;
	} else {
		j->err = callback_exchange(j->sock_path, j->request, j->timeout_ms, w->stopfd, &j->response);
	}
}

static void unref(struct worker *w)
{
	bool last;

	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (!last)
		return;
	for (struct job *j = w->queue, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	for (struct job *j = w->done, *n; j; j = n) {
		n = j->next;
		job_free(j);
	}
	close(w->efd);
	close(w->stopfd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct job *j;

		while (!w->queue && !w->closing) {
			w->idle++;
			pthread_cond_wait(&w->cv, &w->mu);
			w->idle--;
		}
		if (w->closing)
			break;
		j = w->queue;
		w->queue = j->next;
		if (!w->queue)
			w->queue_tail = &w->queue;
		w->queued--;
		if (j->orphaned) {
			job_free(j);
			continue;
		}
		pthread_mutex_unlock(&w->mu);
		run_job(w, j);
		pthread_mutex_lock(&w->mu);
		if (j->orphaned || w->closing) {
			job_free(j);
			continue;
		}
		j->next = w->done;
		w->done = j;
		/* Cannot fail short of a bad fd; the network thread drains on its next wake-up. */
		if (write(w->efd, &one, sizeof(one)) < 0)
			ml_debug("mitm: worker wake-up: %s", strerror(errno));
	}
	w->threads--;
	unref(w);   /* unlocks */
	return NULL;
}

int worker_new(struct worker **out)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0 || w->stopfd < 0) {
		int r = -errno;

		if (w->efd >= 0)
			close(w->efd);
		if (w->stopfd >= 0)
			close(w->stopfd);
		free(w);
		return r;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->queue_tail = &w->queue;
	w->refs = 1;
	*out = w;
	return 0;
}

void worker_free(struct worker *w)
{
	uint64_t one = 1;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->closing = true;
	pthread_cond_broadcast(&w->cv);
	/* callbacks in flight poll this fd too: they give up at once */
	if (write(w->stopfd, &one, sizeof(one)) < 0)
		ml_debug("mitm: worker stop: %s", strerror(errno));
	unref(w);   /* unlocks; the last thread out frees */
}

static int spawn(struct worker *w)
{
	pthread_attr_t at;
	pthread_t t;
	int r;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &at, thread_main, w);
	pthread_attr_destroy(&at);
	if (r)
		return -r;
	w->threads++;
	w->refs++;
	return 0;
}

int worker_submit(struct worker *w, struct job *j)
{
	int r = 0;

	pthread_mutex_lock(&w->mu);
	if (w->queued >= WORKER_QUEUE_MAX) {
		pthread_mutex_unlock(&w->mu);
		return -EBUSY;
	}
	if (!w->idle && w->threads < WORKER_THREADS)
		r = spawn(w);
	if (r < 0 && !w->threads) {
		pthread_mutex_unlock(&w->mu);
		return r;
	}
	j->next = NULL;
	*w->queue_tail = j;
	w->queue_tail = &j->next;
	w->queued++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int worker_fd(const struct worker *w)
{
	return w->efd;
}

struct job *worker_take(struct worker *w)
{
	struct job *list = NULL, *j, *next;
	uint64_t v;

	if (read(w->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		ml_debug("mitm: worker drain: %s", strerror(errno));
	pthread_mutex_lock(&w->mu);
	j = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->mu);
	for (; j; j = next) {
		next = j->next;
		if (j->orphaned) {
			job_free(j);
			continue;
		}
		j->next = list;
		list = j;
	}
	return list;
}

void worker_cancel(struct worker *w, struct job *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&w->mu);
	j->orphaned = true;
	pthread_mutex_unlock(&w->mu);
}
