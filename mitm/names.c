/* mitm/names.c - the names the guest has learned, hashed by address.
 *
 * The policy is checked on the address a flow connects to (see README), but the allow-list is
 * written in host names. The bridge is what the guest's resolver was told: slirpnet relays each
 * DNS answer to mitm_dns_learn(), and a name the allow-list wants is remembered next to its
 * addresses until its TTL ends. The table is bounded: a flood of answers evicts the oldest
 * pairs, it never grows.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "mitm/internal.h"

static uint32_t bucket_of(uint32_t addr)
{
	return (addr * 2654435761u) >> 20 & (NAMES_BUCKETS - 1);
}

int names_init(struct names *t, uint32_t n_fixed)
{
	*t = (struct names){ .fixed_cap = n_fixed, .cap = n_fixed + NAMES_MAX };
	t->e = calloc(t->cap, sizeof(*t->e));
	t->bucket = malloc(NAMES_BUCKETS * sizeof(*t->bucket));
	if (!t->e || !t->bucket) {
		names_free(t);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < NAMES_BUCKETS; i++)
		t->bucket[i] = -1;
	return 0;
}

void names_free(struct names *t)
{
	if (t->e)
		for (uint32_t i = 0; i < t->cap; i++)
			free(t->e[i].name);
	free(t->e);
	free(t->bucket);
	*t = (struct names){ 0 };
}

static void unlink_entry(struct names *t, int32_t idx)
{
	int32_t *p = &t->bucket[bucket_of(t->e[idx].addr)];

	while (*p != -1 && *p != idx)
		p = &t->e[*p].next;
	if (*p == idx)
		*p = t->e[idx].next;
	free(t->e[idx].name);
	t->e[idx].name = NULL;
}

static int32_t find(const struct names *t, const char *name, uint32_t addr)
{
	for (int32_t i = t->bucket[bucket_of(addr)]; i != -1; i = t->e[i].next)
		if (t->e[i].addr == addr && !strcmp(t->e[i].name, name))
			return i;
	return -1;
}

/* --add-host pairs fill the reserved front; every other pair goes round the ring. */
static int32_t take_slot(struct names *t, int64_t expires_ms)
{
	int32_t idx;

	if (expires_ms == NAMES_FOREVER && t->n_fixed < t->fixed_cap)
		return (int32_t)t->n_fixed++;
	idx = (int32_t)(t->fixed_cap + t->ring);
	t->ring = (t->ring + 1) % NAMES_MAX;
	if (t->e[idx].name)
		unlink_entry(t, idx);
	return idx;
}

int names_add(struct names *t, const char *name, uint32_t addr, int64_t expires_ms)
{
	int32_t idx = find(t, name, addr);
	uint32_t b;
	char *copy;

	if (idx >= 0) {
		/* A fresh answer renews the pair; a shorter TTL never shortens it. */
		if (t->e[idx].expires_ms < expires_ms)
			t->e[idx].expires_ms = expires_ms;
		return 0;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	idx = take_slot(t, expires_ms);
	b = bucket_of(addr);
	t->e[idx] = (struct name_entry){ .name = copy, .addr = addr, .next = t->bucket[b],
					 .expires_ms = expires_ms };
	t->bucket[b] = idx;
	return 0;
}

const char *names_next(const struct names *t, uint32_t addr, int64_t now_ms, int32_t *cur)
{
	int32_t i;

	if (!t->e)
		return NULL;
	i = *cur == NAMES_ITER_START ? t->bucket[bucket_of(addr)] : t->e[*cur].next;
	for (; i != -1; i = t->e[i].next)
		if (t->e[i].addr == addr && t->e[i].expires_ms > now_ms) {
			*cur = i;
			return t->e[i].name;
		}
	*cur = -1;
	return NULL;
}

/* ---- CNAME targets of allowed names ---- */

const char *alias_origin(const struct mitm *m, const char *name, int64_t now_ms)
{
	for (size_t i = 0; i < ALIASES_MAX; i++)
		if (m->aliases[i].name && m->aliases[i].expires_ms > now_ms && !strcmp(m->aliases[i].name, name))
			return m->aliases[i].origin;
	return NULL;
}

void alias_add(struct mitm *m, const char *name, const char *origin, int64_t expires_ms)
{
	struct alias *a;
	char *n, *o;

	for (size_t i = 0; i < ALIASES_MAX; i++) {
		a = &m->aliases[i];
		if (a->name && !strcmp(a->name, name) && !strcmp(a->origin, origin)) {
			if (a->expires_ms < expires_ms)
				a->expires_ms = expires_ms;
			return;
		}
	}
	n = strdup(name);
	o = strdup(origin);
	if (!n || !o) {
		free(n);
		free(o);
		return;
	}
	a = &m->aliases[m->alias_ring];
	m->alias_ring = (m->alias_ring + 1) % ALIASES_MAX;
	free(a->name);
	free(a->origin);
	*a = (struct alias){ .name = n, .origin = o, .expires_ms = expires_ms };
}

void aliases_free(struct mitm *m)
{
	for (size_t i = 0; i < ALIASES_MAX; i++) {
		free(m->aliases[i].name);
		free(m->aliases[i].origin);
		m->aliases[i] = (struct alias){ 0 };
	}
}

static int64_t expiry(uint32_t ttl_s)
{
	if (ttl_s < NAMES_TTL_MIN_S)
		ttl_s = NAMES_TTL_MIN_S;
	if (ttl_s > NAMES_TTL_MAX_S)
		ttl_s = NAMES_TTL_MAX_S;
	return mitm_clock_ms() + (int64_t)ttl_s * 1000;
}

void mitm_dns_learn(struct mitm *m, const struct dnswire_answer *a)
{
	char norm[NAME_MAX_LEN + 1], origin[NAME_MAX_LEN + 1];
	const char *o;

	/* Names the allow-list does not want would only crowd out ones it does. A CNAME target
	 * of a wanted name counts as that name: the guest may have asked for it directly. */
	if (!m->names.e || !host_normalize(a->name, norm, sizeof(norm)))
		return;
	if (allow_wants_name(m, norm))
		o = norm;
	else if ((o = alias_origin(m, norm, mitm_clock_ms())))
		o = strcpy(origin, o);
	else
		return;
	for (size_t i = 0; i < a->n_chain; i++)
		if (strcmp(a->chain[i], o))
			alias_add(m, a->chain[i], o, expiry(a->chain_ttl_s));
	for (size_t i = 0; i < a->n; i++)
		if (names_add(&m->names, o, ntohl(a->addrs[i].s_addr), expiry(a->ttl_s)) < 0) {
			ml_warn("mitm: out of memory learning %s", o);
			return;
		}
}
