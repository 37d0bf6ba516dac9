/* mitm/hdr.c - a message head's headers in one arena, and the byte buffers (iob) of the proxy.
 *
 * A head is read in fragments (http_parser may cut a name or value anywhere), so each string
 * lives at the end of one arena while it grows; entries keep offsets, not pointers, so the
 * arena may move. Deleting marks an entry dead; nothing is ever compacted: a head is short-lived.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mitm/http.h"

void hdrs_free(struct hdrs *h)
{
	free(h->v);
	free(h->a);
	*h = (struct hdrs){ 0 };
}

void hdrs_reset(struct hdrs *h)
{
	h->n = 0;
	h->alen = 0;
}

static int arena_grow(struct hdrs *h, size_t more)
{
	size_t cap = h->acap ? h->acap : 1024;
	char *a;

	if ((size_t)h->alen + more <= h->acap)
		return 0;
	if ((size_t)h->alen + more > UINT32_MAX / 2)
		return -ENOMEM;
	while (cap < (size_t)h->alen + more)
		cap *= 2;
	a = realloc(h->a, cap);
	if (!a)
		return -ENOMEM;
	h->a = a;
	h->acap = (uint32_t)cap;
	return 0;
}

int64_t hdrs_intern(struct hdrs *h, const char *s, size_t len)
{
	uint32_t off = h->alen;

	if (arena_grow(h, len + 1) < 0)
		return -ENOMEM;
	if (len)
		memcpy(h->a + off, s, len);
	h->a[off + len] = '\0';
	h->alen += (uint32_t)len + 1;
	return off;
}

int hdrs_extend(struct hdrs *h, uint32_t off, uint32_t *len, const char *s, size_t n)
{
	/* only the arena's last string can grow in place */
	if (h->alen != off + *len + 1)
		return -EINVAL;
	if (arena_grow(h, n) < 0)
		return -ENOMEM;
	memcpy(h->a + off + *len, s, n);
	*len += (uint32_t)n;
	h->a[off + *len] = '\0';
	h->alen += (uint32_t)n;
	return 0;
}

static struct hdr *new_entry(struct hdrs *h)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 16;
		struct hdr *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		h->v = v;
		h->cap = cap;
	}
	return &h->v[h->n++];
}

int hdrs_add(struct hdrs *h, const char *name, size_t nlen, const char *val, size_t vlen)
{
	int64_t no = hdrs_intern(h, name, nlen), vo = 0;
	struct hdr *x;

	if (no < 0 || (val && (vo = hdrs_intern(h, val, vlen)) < 0) || !(x = new_entry(h)))
		return -ENOMEM;
	*x = (struct hdr){ .name = (uint32_t)no, .nlen = (uint32_t)nlen,
			   .value = val ? (uint32_t)vo : HDR_NO_VALUE, .vlen = (uint32_t)vlen };
	return 0;
}

const char *hdrs_get(const struct hdrs *h, const char *name)
{
	for (uint32_t i = 0; i < h->n; i++)
		if (!h->v[i].dead && !strcasecmp(hdr_name(h, &h->v[i]), name))
			return hdr_value(h, &h->v[i]);
	return NULL;
}

unsigned hdrs_count(const struct hdrs *h, const char *name)
{
	unsigned c = 0;

	for (uint32_t i = 0; i < h->n; i++)
		if (!h->v[i].dead && !strcasecmp(hdr_name(h, &h->v[i]), name))
			c++;
	return c;
}

void hdrs_del(struct hdrs *h, const char *name)
{
	for (uint32_t i = 0; i < h->n; i++)
		if (!strcasecmp(hdr_name(h, &h->v[i]), name))
			h->v[i].dead = true;
}

int hdrs_set(struct hdrs *h, const char *name, const char *val)
{
	hdrs_del(h, name);
	return hdrs_add(h, name, strlen(name), val, strlen(val));
}

int hdrs_replace_value(struct hdrs *h, uint32_t i, const char *val, size_t vlen)
{
	int64_t vo = hdrs_intern(h, val, vlen);

	if (vo < 0)
		return -ENOMEM;
	h->v[i].value = (uint32_t)vo;
	h->v[i].vlen = (uint32_t)vlen;
	return 0;
}

static bool list_has(const char *v, const char *token)
{
	size_t tl = strlen(token);

	while (*v) {
		size_t n;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		n = strcspn(v, ",");
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == tl && !strncasecmp(v, token, tl))
			return true;
		v += strcspn(v, ",");
	}
	return false;
}

bool hdrs_has_token(const struct hdrs *h, const char *name, const char *token)
{
	for (uint32_t i = 0; i < h->n; i++)
		if (!h->v[i].dead && !strcasecmp(hdr_name(h, &h->v[i]), name) &&
		    list_has(hdr_value(h, &h->v[i]), token))
			return true;
	return false;
}

void hdr_canonicalize(char *name)
{
	bool up = true;

	for (char *c = name; *c; c++) {
		*c = (char)(up ? toupper((unsigned char)*c) : tolower((unsigned char)*c));
		up = *c == '-';
	}
}

bool hdr_name_ok(const char *s, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
			return false;
	}
	return true;
}

bool hdr_value_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return false;
	return true;
}

/* ---- iob ----
 * Buffers hold memory only while they hold bytes (an idle flow costs nothing), so a bulk
 * transfer empties and refills the same few buffers many times a second. Big ones (more than
 * 16 KiB: read-ahead, a body's worth, a batch of TLS records) all have one size, BIG_CAP, and a
 * few freed ones wait in a per-thread pool for the next use: with malloc's fixed trim threshold
 * (base/proc.c) freeing and taking them from the heap moved its top with a brk() on every
 * round, each refill faulting its pages in again. */
#define BIG_MIN (16u * 1024u)           /* a buffer that needs more is a big one */
#define BIG_CAP (68u * 1024u)           /* 64 KiB + four TLS records' overhead, page-rounded */
#define POOL_MAX 8                      /* per thread: 544 KiB at most */

struct big_pool {
	unsigned n;
	uint8_t *v[POOL_MAX];
};

static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static __thread struct big_pool *pool;

static void pool_destroy(void *p)
{
	struct big_pool *bp = p;

	while (bp->n)
		free(bp->v[--bp->n]);
	free(bp);
}

static void pool_key_make(void)
{
	(void)pthread_key_create(&pool_key, pool_destroy);
}

static uint8_t *big_take(void)
{
	if (pool && pool->n)
		return pool->v[--pool->n];
	return malloc(BIG_CAP);
}

static void big_give(uint8_t *d)
{
	if (!pool) {
		pthread_once(&pool_once, pool_key_make);
		if ((pool = calloc(1, sizeof(*pool))))
			(void)pthread_setspecific(pool_key, pool);
	}
	if (pool && pool->n < POOL_MAX)
		pool->v[pool->n++] = d;
	else
		free(d);
}

void iob_free(struct iob *b)
{
	if (b->d && b->cap == BIG_CAP)
		big_give(b->d);
	else
		free(b->d);
	*b = (struct iob){ 0 };
}

uint8_t *iob_space(struct iob *b, size_t n)
{
	if (b->off && b->off + b->len + n > b->cap) {
		memmove(b->d, b->d + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n > b->cap && b->len + n > BIG_MIN && b->len + n <= BIG_CAP && b->cap < BIG_CAP) {
		uint8_t *d = big_take();

		if (!d)
			return NULL;
		if (b->len)
			memcpy(d, b->d, b->len);
		free(b->d);   /* a small one */
		b->d = d;
		b->cap = BIG_CAP;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096, need = b->len + n;
		uint8_t *d;

		/* doubling; past 64 KiB only what is needed (4 KiB steps), under malloc's mmap
		 * threshold (96 KiB, base/proc.c) as long as possible */
		while (cap < need && cap < 65536)
			cap *= 2;
		if (cap < need)
			cap = (need + 4095) & ~(size_t)4095;
		d = realloc(b->d, cap);
		if (!d)
			return NULL;
		b->d = d;
		b->cap = cap;
	}
	return b->d + b->off + b->len;
}

int iob_put(struct iob *b, const void *p, size_t n)
{
	uint8_t *to;

	if (!n)
		return 0;
	if (!(to = iob_space(b, n)))
		return -ENOMEM;
	memcpy(to, p, n);
	b->len += n;
	return 0;
}

int iob_printf(struct iob *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	uint8_t *to;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(to = iob_space(b, (size_t)n + 1)))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf((char *)to, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void iob_consume(struct iob *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (!b->len)
		iob_free(b);   /* an idle flow holds no buffers */
}
