/* base/buf.h - the one door for bytes from an untrusted peer (the guest, a registry, a tar).
 * Every length or offset that came from outside goes through buf_get() before it is used. */
#ifndef ML_BASE_BUF_H
#define ML_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	const uint8_t *data;
	size_t len;
};

/* Returns a pointer to len bytes at off, or NULL if they are not all inside the buffer. */
static inline const void *buf_get(const struct buf *b, size_t off, size_t len)
{
	if (off > b->len || len > b->len - off)
		return NULL;
	return b->data + off;
}

/* A cursor that reads forward; any read past the end sets bad and returns zero/NULL. */
struct cursor {
	struct buf b;
	size_t off;
	int bad;
};

static inline const void *cur_take(struct cursor *c, size_t len)
{
	const void *p = buf_get(&c->b, c->off, len);
	if (!p) {
		c->bad = 1;
		return NULL;
	}
	c->off += len;
	return p;
}
static inline uint16_t cur_u16(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}
static inline uint32_t cur_u32(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 4);
	return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}
static inline uint64_t cur_u64(struct cursor *c)
{
	uint64_t lo = cur_u32(c);
	return lo | (uint64_t)cur_u32(c) << 32;
}
static inline size_t cur_left(const struct cursor *c) { return c->b.len - c->off; }

static inline void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void put_u64(uint8_t *p, uint64_t v) { put_u32(p, (uint32_t)v); put_u32(p + 4, (uint32_t)(v >> 32)); }

#endif
