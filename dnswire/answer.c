/* dnswire/answer.c - reads upstream DNS replies (RFC 1035 §4) for the addresses they give a
 * name. The bytes come from the network, and whoever answers can shape them, so every read goes
 * through buf_get(), and a reply that is not exactly well formed teaches nothing (it is still
 * relayed: the guest's resolver makes its own judgement).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "dnswire/dnswire.h"

#define DNS_HDR DNSWIRE_HDR
#define RR_FIXED 10  /* type, class, ttl, rdlength */
#define TYPE_A DNSWIRE_TYPE_A
#define TYPE_CNAME DNSWIRE_TYPE_CNAME
#define CLASS_IN DNSWIRE_CLASS_IN

/* One resource record, located: the owner name is decoded again when it is compared. */
struct rr {
	size_t owner;
	uint16_t type, klass;
	uint32_t ttl;
	size_t rdata, rdlen;
};

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* A pointer must point before the start of the run of labels that led to it. So each jump
 * lands strictly lower than the last one: no loop can form, and a forward pointer (to bytes a
 * compressor cannot have written yet) is refused. Real compressors only point back at names
 * written earlier, which this always allows. */
int dnswire_name(const struct buf *msg, size_t off, uint8_t out[DNSWIRE_WIRE_MAX], size_t *out_len, size_t *next)
{
	size_t pos = off, run = off, n = 0;
	bool jumped = false;
	int jumps = 0;

	for (;;) {
		const uint8_t *l = buf_get(msg, pos, 1);
		if (!l)
			return -EBADMSG;
		if ((*l & 0xc0) == 0xc0) {
			const uint8_t *p = buf_get(msg, pos, 2);
			size_t target;
			if (!p || ++jumps > DNSWIRE_JUMPS_MAX)
				return -EBADMSG;
			target = dnswire_rd16(p) & 0x3fff;
			if (target >= run)
				return -EBADMSG;
			if (!jumped)
				*next = pos + 2;
			jumped = true;
			pos = run = target;
			continue;
		}
		if (*l & 0xc0) /* 01 and 10: extended label types (RFC 6891 retired them) */
			return -EBADMSG;
		const uint8_t *d = buf_get(msg, pos + 1, *l);
		if (!d || n + 1 + *l > DNSWIRE_WIRE_MAX)
			return -EBADMSG;
		out[n++] = *l;
		for (size_t i = 0; i < *l; i++)
			out[n++] = lower(d[i]);
		pos += 1 + (size_t)*l;
		if (*l == 0)
			break;
	}
	if (!jumped)
		*next = pos;
	*out_len = n;
	return 0;
}

static int skip_name(const struct buf *msg, size_t off, size_t *next)
{
	uint8_t name[DNSWIRE_WIRE_MAX];
	size_t len;

	return dnswire_name(msg, off, name, &len, next);
}

static int read_rr(const struct buf *msg, size_t *off, struct rr *rr)
{
	size_t at;
	const uint8_t *f;

	if (skip_name(msg, *off, &at) < 0 || !(f = buf_get(msg, at, RR_FIXED)))
		return -EBADMSG;
	rr->owner = *off;
	rr->type = dnswire_rd16(f);
	rr->klass = dnswire_rd16(f + 2);
	/* RFC 2181 §8: a TTL with the top bit set means zero. */
	rr->ttl = dnswire_rd32(f + 4) & 0x80000000u ? 0 : dnswire_rd32(f + 4);
	rr->rdata = at + RR_FIXED;
	rr->rdlen = dnswire_rd16(f + 8);
	if (!buf_get(msg, rr->rdata, rr->rdlen))
		return -EBADMSG;
	*off = rr->rdata + rr->rdlen;
	return 0;
}

/* The answer records this reader uses must have the rdata their type promises. */
static int check_answer_rdata(const struct buf *msg, const struct rr *rr)
{
	size_t end;

	if (rr->klass != CLASS_IN)
		return 0;
	if (rr->type == TYPE_A)
		return rr->rdlen == 4 ? 0 : -EBADMSG;
	if (rr->type == TYPE_CNAME)
		return skip_name(msg, rr->rdata, &end) == 0 && end == rr->rdata + rr->rdlen ? 0 : -EBADMSG;
	return 0;
}

struct reply {
	struct buf msg;
	uint16_t flags, qtype, qclass;
	uint8_t qname[DNSWIRE_WIRE_MAX];
	size_t qname_len;
	struct rr ans[DNSWIRE_RRS_MAX];
	size_t n_ans;
};

/* Walks every section; stores the first answer records. */
static int read_reply(struct reply *r)
{
	const uint8_t *h = buf_get(&r->msg, 0, DNS_HDR), *q;
	size_t off, an, total;

	if (!h || !(h[2] & 0x80) || dnswire_rd16(h + 4) != 1)
		return -EBADMSG;
	r->flags = dnswire_rd16(h + 2);
	an = dnswire_rd16(h + 6);
	total = an + dnswire_rd16(h + 8) + dnswire_rd16(h + 10);
	if (dnswire_name(&r->msg, DNS_HDR, r->qname, &r->qname_len, &off) < 0 || !(q = buf_get(&r->msg, off, 4)))
		return -EBADMSG;
	r->qtype = dnswire_rd16(q);
	r->qclass = dnswire_rd16(q + 2);
	off += 4;
	for (size_t i = 0; i < total; i++) {
		struct rr rr;
		if (read_rr(&r->msg, &off, &rr) < 0)
			return -EBADMSG;
		if (i >= an)
			continue;
		if (check_answer_rdata(&r->msg, &rr) < 0)
			return -EBADMSG;
		if (r->n_ans < DNSWIRE_RRS_MAX)
			r->ans[r->n_ans++] = rr;
	}
	return off == r->msg.len ? 0 : -EBADMSG;
}

static bool owner_is(const struct reply *r, const struct rr *rr, const uint8_t *name, size_t len)
{
	uint8_t owner[DNSWIRE_WIRE_MAX];
	size_t olen, next;

	return dnswire_name(&r->msg, rr->owner, owner, &olen, &next) == 0 && olen == len && !memcmp(owner, name, len);
}

/* Wire labels to "a.b.c"; false unless every byte is a host-name character. */
static bool name_text(const uint8_t *w, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len && w[i]; i += 1 + (size_t)w[i]) {
		if (o)
			out[o++] = '.';
		for (size_t j = 1; j <= w[i]; j++) {
			uint8_t c = w[i + j];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
				return false;
			out[o++] = (char)c;
		}
	}
	out[o] = 0;
	return o > 0;
}

/* The names the question reaches: itself, then the target of its CNAME, and so on. */
static size_t follow_cnames(const struct reply *r, uint8_t chain[][DNSWIRE_WIRE_MAX], size_t *lens, uint32_t *ttl)
{
	size_t n = 1;

	memcpy(chain[0], r->qname, r->qname_len);
	lens[0] = r->qname_len;
	while (n <= DNSWIRE_CHAIN_MAX) {
		const struct rr *hit = NULL;
		for (size_t i = 0; i < r->n_ans && !hit; i++)
			if (r->ans[i].type == TYPE_CNAME && r->ans[i].klass == CLASS_IN &&
			    owner_is(r, &r->ans[i], chain[n - 1], lens[n - 1]))
				hit = &r->ans[i];
		size_t next;
		if (!hit || dnswire_name(&r->msg, hit->rdata, chain[n], &lens[n], &next) < 0)
			break;
		if (hit->ttl < *ttl)
			*ttl = hit->ttl;
		n++;
	}
	return n;
}

static void add_addr(struct dnswire_answer *a, const uint8_t *rdata)
{
	struct in_addr ip;

	memcpy(&ip.s_addr, rdata, 4);
	for (size_t i = 0; i < a->n; i++)
		if (a->addrs[i].s_addr == ip.s_addr)
			return;
	if (a->n < DNSWIRE_ADDRS_MAX)
		a->addrs[a->n++] = ip;
}

/* The CNAME targets, as text, for a caller that lets the guest ask for them too. */
static void report_chain(struct dnswire_answer *a, uint8_t chain[][DNSWIRE_WIRE_MAX], const size_t *lens, size_t n,
			 uint32_t ttl)
{
	for (size_t c = 1; c < n && a->n_chain < DNSWIRE_CHAIN_MAX; c++) {
		if (!name_text(chain[c], lens[c], a->chain[a->n_chain]))
			break;
		a->n_chain++;
	}
	a->chain_ttl_s = a->n_chain ? ttl : 0;
}

static void collect(const struct reply *r, struct dnswire_answer *a)
{
	uint8_t chain[DNSWIRE_CHAIN_MAX + 1][DNSWIRE_WIRE_MAX];
	size_t lens[DNSWIRE_CHAIN_MAX + 1];
	uint32_t ttl = UINT32_MAX;
	size_t n = follow_cnames(r, chain, lens, &ttl);

	report_chain(a, chain, lens, n, ttl);
	for (size_t i = 0; i < r->n_ans; i++) {
		const struct rr *rr = &r->ans[i];
		if (rr->type != TYPE_A || rr->klass != CLASS_IN)
			continue;
		for (size_t c = 0; c < n; c++)
			if (owner_is(r, rr, chain[c], lens[c])) {
				add_addr(a, r->msg.data + rr->rdata);
				if (rr->ttl < ttl)
					ttl = rr->ttl;
				break;
			}
	}
	a->ttl_s = a->n ? ttl : 0;
}

int dnswire_parse_answer(const uint8_t *msg, size_t len, struct dnswire_answer *a)
{
	struct reply r = { .msg = { msg, len } };

	memset(a, 0, sizeof(*a));
	if (read_reply(&r) < 0)
		return -EBADMSG;
	/* Opcode QUERY, rcode NOERROR, an A/IN question: anything else says nothing about A. */
	if ((r.flags & 0x780f) != 0 || r.qtype != TYPE_A || r.qclass != CLASS_IN)
		return 0;
	if (!name_text(r.qname, r.qname_len, a->name))
		return 0;
	collect(&r, a);
	return 0;
}
