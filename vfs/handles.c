/* vfs/handles.c - open files and directories by fh. The guest names a handle by the 64-bit fh
 * we gave it: the low half is a slot, the high half the slot's generation, so a forged or stale
 * fh (a slot since reused) is refused instead of reaching someone else's file. A handle in use
 * by a request (a long read) outlives a RELEASE that races it: it is freed by its last user. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vfs/internal.h"

struct hslot {
	struct handle *h;
	uint32_t gen;
};

int handles_init(struct vfs *v)
{
	pthread_mutex_init(&v->h_mu, NULL);
	return 0;
}

static void handle_destroy(struct vfs *v, struct handle *h)
{
	if (h->node && h->node->m && h->node->m->be->release)
		h->node->m->be->release(v, h);
	for (size_t i = 0; i < h->nents; i++)
		free(h->ents[i].name);
	free(h->ents);
	pthread_mutex_destroy(&h->lock);
	vtree_lock(v);
	vtree_unref(v, h->node);
	vtree_unlock(v);
	free(h);
}

void handles_free(struct vfs *v)
{
	for (size_t i = 0; i < v->h_cap; i++)
		if (v->hslots[i].h)
			handle_destroy(v, v->hslots[i].h);
	free(v->hslots);
	free(v->h_free);
	v->hslots = NULL;
	v->h_free = NULL;
	v->h_cap = v->h_used = v->h_nfree = 0;
	pthread_mutex_destroy(&v->h_mu);
}

static int slot_alloc(struct vfs *v, uint32_t *idx)
{
	if (v->h_nfree) {
		*idx = v->h_free[--v->h_nfree];
		return 0;
	}
	if (v->h_used == v->h_cap) {
		size_t cap = v->h_cap ? v->h_cap * 2 : 64;
		if (cap > UINT32_MAX)
			return -EMFILE;
		struct hslot *s = realloc(v->hslots, cap * sizeof(*s));
		uint32_t *f = s ? realloc(v->h_free, cap * sizeof(*f)) : NULL;
		if (s)
			v->hslots = s;
		if (!f)
			return -ENOMEM;
		v->h_free = f;
		memset(s + v->h_cap, 0, (cap - v->h_cap) * sizeof(*s));
		v->h_cap = cap;
	}
	*idx = (uint32_t)v->h_used++;
	return 0;
}

struct handle *handle_new(struct vfs *v, struct node *n, uint64_t *fh)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->fd = -1;
	h->node = n;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&v->h_mu);
	uint32_t idx;
	if (slot_alloc(v, &idx) < 0) {
		pthread_mutex_unlock(&v->h_mu);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	struct hslot *s = &v->hslots[idx];
	s->h = h;
	s->gen++;
	*fh = (uint64_t)s->gen << 32 | idx;
	pthread_mutex_unlock(&v->h_mu);
	vtree_lock(v);
	vtree_ref(n);
	vtree_unlock(v);
	return h;
}

static struct hslot *slot_of(struct vfs *v, uint64_t fh)
{
	uint32_t idx = (uint32_t)fh, gen = (uint32_t)(fh >> 32);
	if (idx >= v->h_used || !v->hslots[idx].h || v->hslots[idx].gen != gen)
		return NULL;
	return &v->hslots[idx];
}

struct handle *handle_get(struct vfs *v, uint64_t fh)
{
	pthread_mutex_lock(&v->h_mu);
	struct hslot *s = slot_of(v, fh);
	struct handle *h = s ? s->h : NULL;
	if (h)
		h->users++;
	pthread_mutex_unlock(&v->h_mu);
	return h;
}

void handle_put(struct vfs *v, struct handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&v->h_mu);
	bool last = --h->users == 0 && h->dying;
	pthread_mutex_unlock(&v->h_mu);
	if (last)
		handle_destroy(v, h);
}

struct handle *handle_take(struct vfs *v, uint64_t fh)
{
	pthread_mutex_lock(&v->h_mu);
	struct hslot *s = slot_of(v, fh);
	struct handle *h = s ? s->h : NULL;
	if (h) {
		h->users++;
		h->dying = true;
		s->h = NULL;
		v->h_free[v->h_nfree++] = (uint32_t)(s - v->hslots);
	}
	pthread_mutex_unlock(&v->h_mu);
	return h;
}

struct handle *handle_of_node(struct vfs *v, struct node *n)
{
	pthread_mutex_lock(&v->h_mu);
	struct handle *h = NULL;
	for (size_t i = 0; i < v->h_used && !h; i++)
		if (v->hslots[i].h && v->hslots[i].h->node == n && !v->hslots[i].h->is_dir)
			h = v->hslots[i].h;
	if (h)
		h->users++;
	pthread_mutex_unlock(&v->h_mu);
	return h;
}

uint64_t handles_count(struct vfs *v)
{
	pthread_mutex_lock(&v->h_mu);
	uint64_t n = v->h_used - v->h_nfree;
	pthread_mutex_unlock(&v->h_mu);
	return n;
}
