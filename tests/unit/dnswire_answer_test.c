/* tests/unit/dnswire_answer_test.c - dnswire/answer.c, the reader of upstream DNS replies:
 * A answers and CNAME chains give the right addresses and smallest TTL; compression is
 * followed; pointer loops, forward and out-of-bounds pointers, over-long names, reserved label
 * types, wrong counts, trailing bytes and bad rdata lengths are refused; replies that say
 * nothing about A (other types, errors) and names that are not host names teach nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dnswire/dnswire.h"

#define T_A 1
#define T_CNAME 5
#define T_AAAA 28
#define T_OPT 41

struct msg {
	uint8_t b[8192];
	size_t n;
};

static void put(struct msg *m, const void *d, size_t len)
{
	assert_true(m->n + len <= sizeof(m->b));
	memcpy(m->b + m->n, d, len);
	m->n += len;
}

static void put16(struct msg *m, uint16_t v)
{
	uint8_t b[2];
	dnswire_wr16(b, v);
	put(m, b, 2);
}

static void put32(struct msg *m, uint32_t v)
{
	uint8_t b[4];
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
	put(m, b, 4);
}

/* A response header: QR and RD|RA set, rcode from flags' low bits. */
static void header(struct msg *m, uint16_t rcode, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar)
{
	m->n = 0;
	put16(m, 0x4242);
	put16(m, (uint16_t)(0x8180 | rcode));
	put16(m, qd);
	put16(m, an);
	put16(m, ns);
	put16(m, ar);
}

/* Writes "a.b.c" as labels; if ptr >= 0 the name ends with a pointer there instead of root.
 * Returns the offset the name starts at. */
static size_t name_ptr(struct msg *m, const char *dotted, int ptr)
{
	size_t at = m->n;
	const char *p = dotted;

	while (*p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		uint8_t l = (uint8_t)len;
		put(m, &l, 1);
		put(m, p, len);
		p += len + (dot ? 1 : 0);
	}
	if (ptr >= 0)
		put16(m, (uint16_t)(0xc000 | ptr));
	else
		put(m, "", 1);
	return at;
}

static size_t name(struct msg *m, const char *dotted) { return name_ptr(m, dotted, -1); }

static void question(struct msg *m, const char *qname, uint16_t type)
{
	name(m, qname);
	put16(m, type);
	put16(m, 1);
}

static void rr_head(struct msg *m, uint16_t type, uint32_t ttl, uint16_t rdlen)
{
	put16(m, type);
	put16(m, 1);
	put32(m, ttl);
	put16(m, rdlen);
}

/* An A record whose owner is a pointer to owner_off. */
static void a_at(struct msg *m, size_t owner_off, uint32_t ttl, uint32_t ip)
{
	put16(m, (uint16_t)(0xc000 | owner_off));
	rr_head(m, T_A, ttl, 4);
	put32(m, ip);
}

/* A CNAME record owned by a pointer to owner_off, its target written out in full. Returns
 * the offset of the target name. */
static size_t cname_at(struct msg *m, size_t owner_off, uint32_t ttl, const char *target)
{
	size_t at;
	put16(m, (uint16_t)(0xc000 | owner_off));
	rr_head(m, T_CNAME, ttl, (uint16_t)(strlen(target) + 2));
	at = name(m, target);
	return at;
}

static int parse(const struct msg *m, struct dnswire_answer *a) { return dnswire_parse_answer(m->b, m->n, a); }

static void plain_a_is_read_and_the_name_lowercased(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 1, 0, 0);
	question(&m, "Example.TEST", T_A);
	a_at(&m, 12, 60, 0xc0000201);
	assert_int_equal(parse(&m, &a), 0);
	assert_string_equal(a.name, "example.test");
	assert_int_equal(a.n, 1);
	assert_int_equal(ntohl(a.addrs[0].s_addr), 0xc0000201);
	assert_int_equal(a.ttl_s, 60);
}

static void several_a_give_distinct_addresses_and_the_smallest_ttl(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 4, 0, 1);
	question(&m, "example.test", T_A);
	a_at(&m, 12, 300, 0xc0000201);
	a_at(&m, 12, 100, 0xc0000202);
	a_at(&m, 12, 200, 0xc0000201);
	a_at(&m, 12, 0x80000001, 0xc0000203); /* top bit set: RFC 2181 says zero */
	name(&m, "");                          /* EDNS OPT in the additional section */
	put16(&m, T_OPT);
	put16(&m, 1232);
	put32(&m, 0);
	put16(&m, 0);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 3);
	assert_int_equal(a.ttl_s, 0);

	assert_int_equal(ntohl(a.addrs[0].s_addr), 0xc0000201);
	assert_int_equal(ntohl(a.addrs[1].s_addr), 0xc0000202);
	assert_int_equal(ntohl(a.addrs[2].s_addr), 0xc0000203);
}

/* www.example.test CNAME a.cdn.test CNAME b.cdn.test A 192.0.2.7, records in reverse order,
 * plus an A record for a name outside the chain, which must not be reported. */
static void a_cname_chain_is_followed_in_any_order(void **state)
{
	struct msg m;
	struct dnswire_answer a;
	size_t b_off, a_off;

	(void)state;
	header(&m, 0, 1, 4, 0, 0);
	question(&m, "www.example.test", T_A);
	/* owner b.cdn.test written in full, then the records that point at it */
	b_off = name(&m, "b.cdn.test");
	rr_head(&m, T_A, 120, 4);
	put32(&m, 0xc0000207);
	put16(&m, 0xc000 | 12);                 /* www.example.test CNAME a.cdn.test */
	rr_head(&m, T_CNAME, 600, (uint16_t)(strlen("a.cdn.test") + 2));
	a_off = name(&m, "a.cdn.test");
	put16(&m, (uint16_t)(0xc000 | a_off));  /* a.cdn.test CNAME b.cdn.test (compressed) */
	rr_head(&m, T_CNAME, 30, 2);
	put16(&m, (uint16_t)(0xc000 | b_off));
	name(&m, "other.test");
	rr_head(&m, T_A, 5, 4);
	put32(&m, 0xc6336401);
	assert_int_equal(parse(&m, &a), 0);
	assert_string_equal(a.name, "www.example.test");
	assert_int_equal(a.n, 1);
	assert_int_equal(ntohl(a.addrs[0].s_addr), 0xc0000207);
	assert_int_equal(a.ttl_s, 30);
	/* the CNAME targets, in chain order, with the smallest CNAME TTL on the way */
	assert_int_equal(a.n_chain, 2);
	assert_string_equal(a.chain[0], "a.cdn.test");
	assert_string_equal(a.chain[1], "b.cdn.test");
	assert_int_equal(a.chain_ttl_s, 30);
}

/* A CNAME whose target has no A record in the answer: no address, but the target is told,
 * so a policy can let the guest ask for it. */
static void a_cname_without_address_still_reports_the_target(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 1, 0, 0);
	question(&m, "www.example.test", T_A);
	cname_at(&m, 12, 300, "edge.cdn.test");
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(a.ttl_s, 0);
	assert_int_equal(a.n_chain, 1);
	assert_string_equal(a.chain[0], "edge.cdn.test");
	assert_int_equal(a.chain_ttl_s, 300);
}

/* q -> c1 -> ... -> c<hops>, A on the last. */
static void chain(struct msg *m, int hops)
{
	size_t owner = 12;
	char t[32];

	header(m, 0, 1, (uint16_t)(hops + 1), 0, 0);
	question(m, "q.test", T_A);
	for (int i = 1; i <= hops; i++) {
		snprintf(t, sizeof(t), "c%d.test", i);
		owner = cname_at(m, owner, 100, t);
	}
	a_at(m, owner, 100, 0x0a000001);
}

static void cname_chains_are_followed_eight_deep_and_no_further(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	chain(&m, DNSWIRE_CHAIN_MAX);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 1);
	chain(&m, DNSWIRE_CHAIN_MAX + 1);
	assert_int_equal(parse(&m, &a), 0); /* well formed, but too deep to be trusted */
	assert_int_equal(a.n, 0);
}

static void a_cname_loop_ends(void **state)
{
	struct msg m;
	struct dnswire_answer a;
	size_t x;

	(void)state;
	header(&m, 0, 1, 2, 0, 0);
	question(&m, "q.test", T_A);
	x = cname_at(&m, 12, 100, "x.test"); /* q -> x */
	put16(&m, (uint16_t)(0xc000 | x));    /* x -> q */
	rr_head(&m, T_CNAME, 100, 2);
	put16(&m, 0xc000 | 12);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 0);
}

static void pointer_loops_and_forward_pointers_are_refused(void **state)
{
	struct msg m;
	struct dnswire_answer a;
	uint8_t out[DNSWIRE_WIRE_MAX];
	size_t len, next, at;

	(void)state;
	/* an owner that points at itself */
	header(&m, 0, 1, 1, 0, 0);
	question(&m, "q.test", T_A);
	at = m.n;
	put16(&m, (uint16_t)(0xc000 | at));
	rr_head(&m, T_A, 1, 4);
	put32(&m, 1);
	assert_int_equal(parse(&m, &a), -EBADMSG);
	assert_int_equal(dnswire_name(&(struct buf){ m.b, m.n }, at, out, &len, &next), -EBADMSG);

	/* a label, then a pointer back to that label: a loop through one step */
	header(&m, 0, 1, 1, 0, 0);
	question(&m, "q.test", T_A);
	at = name_ptr(&m, "loop", (int)m.n);
	rr_head(&m, T_A, 1, 4);
	put32(&m, 1);
	assert_int_equal(parse(&m, &a), -EBADMSG);

	/* two pointers at each other: the later one may point back, the earlier one not forward */
	header(&m, 0, 1, 0, 0, 0);
	question(&m, "q.test", T_A);
	at = m.n;
	put16(&m, (uint16_t)(0xc000 | (at + 2)));
	put16(&m, (uint16_t)(0xc000 | at));
	struct buf b = { m.b, m.n };
	assert_int_equal(dnswire_name(&b, at, out, &len, &next), -EBADMSG);
	assert_int_equal(dnswire_name(&b, at + 2, out, &len, &next), -EBADMSG);

	/* an owner pointing forward at a name written later, in the next record's rdata: every
	 * byte accounted for, the target well formed, and still refused */
	header(&m, 0, 1, 2, 0, 0);
	question(&m, "q.test", T_A);
	at = m.n;
	put16(&m, 0);                            /* patched below */
	rr_head(&m, T_A, 1, 4);
	put32(&m, 1);
	size_t target = cname_at(&m, 12, 1, "x.test");
	dnswire_wr16(m.b + at, (uint16_t)(0xc000 | target));
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + at, 0xc000 | 12);             /* the same record owned by the question: fine */
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 1);

	/* a question whose name points forward, into the answer */
	header(&m, 0, 1, 0, 0, 0);
	put16(&m, 0xc000 | 18);
	put16(&m, T_A);
	put16(&m, 1);
	name(&m, "fwd.test");
	assert_int_equal(parse(&m, &a), -EBADMSG);
}

static void out_of_bounds_pointers_and_reserved_labels_are_refused(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 1, 0, 0);
	question(&m, "q.test", T_A);
	a_at(&m, 12, 1, 1);
	size_t owner = m.n - 16;
	dnswire_wr16(m.b + owner, 0xc000 | 0x3fff);     /* far past the end (and forward) */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + owner, 0xc000 | 12);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 1);
	m.b[owner] = 0x40;                       /* 01: extended label type */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	m.b[owner] = 0x80;                       /* 10: reserved */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	m.n = owner + 1;                         /* a pointer cut in half */
	m.b[owner] = 0xc0;
	dnswire_wr16(m.b + 6, 1);
	assert_int_equal(parse(&m, &a), -EBADMSG);
}

static void names_longer_than_255_bytes_are_refused(void **state)
{
	struct msg m;
	uint8_t out[DNSWIRE_WIRE_MAX];
	size_t len, next;
	char big[300];

	(void)state;
	/* labels of 63, 63, 63 and 62: 256 bytes with the root label */
	memset(big, 'a', sizeof(big));
	big[63] = big[127] = big[191] = '.';
	big[3 * 64 + 62] = 0;
	m.n = 0;
	name(&m, big);
	struct buf b = { m.b, m.n };
	assert_int_equal(dnswire_name(&b, 0, out, &len, &next), -EBADMSG);
	/* 3 x 63 + 61 = 255 bytes: the longest legal name */
	big[3 * 64 + 61] = 0;
	m.n = 0;
	name(&m, big);
	b = (struct buf){ m.b, m.n };
	assert_int_equal(dnswire_name(&b, 0, out, &len, &next), 0);
	assert_int_equal(len, 255);
	assert_int_equal(next, m.n);
	/* 200 bytes of labels + a pointer to a 100-byte name: too long only once joined */
	m.n = 0;
	memset(big, 'b', sizeof(big));
	big[63] = '.';
	big[97] = 0;
	size_t tail = name(&m, big); /* 63 + 33 characters: 99 bytes */
	memset(big, 'a', sizeof(big));
	big[63] = big[127] = big[191] = '.';
	big[199] = 0;
	size_t head = name_ptr(&m, big, (int)tail);
	b = (struct buf){ m.b, m.n };
	assert_int_equal(dnswire_name(&b, tail, out, &len, &next), 0);
	assert_int_equal(dnswire_name(&b, head, out, &len, &next), -EBADMSG);
}

static void counts_must_match_the_records(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 2, 0, 0);               /* two answers announced, one present */
	question(&m, "q.test", T_A);
	a_at(&m, 12, 1, 1);
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + 6, 0);                        /* none announced, one present: trailing bytes */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + 6, 1);
	assert_int_equal(parse(&m, &a), 0);
	dnswire_wr16(m.b + 10, 1);                       /* an additional record that is not there */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + 10, 0);
	dnswire_wr16(m.b + 4, 2);                        /* two questions: not a reply to ours */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + 4, 0);
	assert_int_equal(parse(&m, &a), -EBADMSG);
	assert_int_equal(dnswire_parse_answer(m.b, 11, &a), -EBADMSG);
	assert_int_equal(dnswire_parse_answer(m.b, 0, &a), -EBADMSG);
}

static void rdata_lengths_are_checked(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 1, 0, 0);
	question(&m, "q.test", T_A);
	a_at(&m, 12, 1, 1);
	dnswire_wr16(m.b + m.n - 6, 5);                  /* rdlength past the end */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	put(&m, "x", 1);                         /* now present, but an A of 5 bytes */
	assert_int_equal(parse(&m, &a), -EBADMSG);

	header(&m, 0, 1, 1, 0, 0);               /* a CNAME whose name stops short of its rdata */
	question(&m, "q.test", T_A);
	put16(&m, 0xc000 | 12);
	rr_head(&m, T_CNAME, 1, 9);
	name(&m, "x.test");
	put(&m, "", 1);
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + m.n - 11, 7);                 /* and one running past it */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	dnswire_wr16(m.b + m.n - 11, 8);                 /* exact */
	m.n--;
	assert_int_equal(parse(&m, &a), 0);
}

static void replies_that_say_nothing_about_a_teach_nothing(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 1, 0, 0);               /* AAAA question, with a stray A record */
	question(&m, "q.test", T_AAAA);
	a_at(&m, 12, 1, 1);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 0);
	header(&m, 3, 1, 1, 0, 0);               /* NXDOMAIN */
	question(&m, "q.test", T_A);
	a_at(&m, 12, 1, 1);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 0);
	dnswire_wr16(m.b + 2, 0x8180);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 1);
	m.b[2] = 0x01;                           /* a query, not a response */
	assert_int_equal(parse(&m, &a), -EBADMSG);
	m.b[2] = 0x80 | (2 << 3);                /* a response to opcode STATUS */
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 0);
	m.b[2] = 0x81;
	dnswire_wr16(m.b + m.n - 12, 3);                 /* class CH */
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 0);
}

/* "api.github.com\0" as one label of evil.test: as a C string it would read as
 * api.github.com; a label holding a dot would pass for two labels. Neither is reported. */
static void names_that_are_not_host_names_are_not_reported(void **state)
{
	static const char *const bad[] = { "api.github.com\0", "a.b", "sp ace", "\xc3\xa9t\xc3\xa9", "*" };
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = i == 0 ? 15 : strlen(bad[i]);
		uint8_t l = (uint8_t)len;
		header(&m, 0, 1, 1, 0, 0);
		put(&m, &l, 1);
		put(&m, bad[i], len);
		name(&m, "evil.test");
		put16(&m, T_A);
		put16(&m, 1);
		a_at(&m, 12, 1, 1);
		assert_int_equal(parse(&m, &a), 0);
		assert_int_equal(a.n, 0);
	}
	header(&m, 0, 1, 1, 0, 0);               /* the root itself */
	question(&m, "", T_A);
	a_at(&m, 12, 1, 1);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 0);
	header(&m, 0, 1, 1, 0, 0);               /* but '-' and '_' and digits are fine */
	question(&m, "_x-1.Test", T_A);
	a_at(&m, 12, 1, 1);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.name, "_x-1.test");
}

static void at_most_32_addresses_are_reported(void **state)
{
	struct msg m;
	struct dnswire_answer a;

	(void)state;
	header(&m, 0, 1, 100, 0, 0);
	question(&m, "many.test", T_A);
	for (uint32_t i = 0; i < 100; i++)
		a_at(&m, 12, 1000 - i, 0x0a000000 + i);
	assert_int_equal(parse(&m, &a), 0);
	assert_int_equal(a.n, DNSWIRE_ADDRS_MAX);
	assert_int_equal(ntohl(a.addrs[31].s_addr), 0x0a00001f);
	/* only the first DNSWIRE_RRS_MAX records are used: their smallest TTL */
	assert_int_equal(a.ttl_s, 1000 - (DNSWIRE_RRS_MAX - 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_a_is_read_and_the_name_lowercased),
		cmocka_unit_test(several_a_give_distinct_addresses_and_the_smallest_ttl),
		cmocka_unit_test(a_cname_chain_is_followed_in_any_order),
		cmocka_unit_test(a_cname_without_address_still_reports_the_target),
		cmocka_unit_test(cname_chains_are_followed_eight_deep_and_no_further),
		cmocka_unit_test(a_cname_loop_ends),
		cmocka_unit_test(pointer_loops_and_forward_pointers_are_refused),
		cmocka_unit_test(out_of_bounds_pointers_and_reserved_labels_are_refused),
		cmocka_unit_test(names_longer_than_255_bytes_are_refused),
		cmocka_unit_test(counts_must_match_the_records),
		cmocka_unit_test(rdata_lengths_are_checked),
		cmocka_unit_test(replies_that_say_nothing_about_a_teach_nothing),
		cmocka_unit_test(names_that_are_not_host_names_are_not_reported),
		cmocka_unit_test(at_most_32_addresses_are_reported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
