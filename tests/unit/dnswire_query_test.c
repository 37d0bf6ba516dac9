/* tests/unit/dnswire_query_test.c - dnswire/query.c: guest queries read strictly (name as
 * lowercase text only when it is a host name; responses, other opcodes, several questions,
 * records, compression, over-long names refused), empty answers (REFUSED and NOERROR) built
 * from them, and the TCP framer fed byte by byte, whole, and with bad lengths. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dnswire/dnswire.h"

/* A query for dotted (labels written as given) of type qtype, flags 0x0100 (RD). */
static size_t query(uint8_t *b, const char *dotted, uint16_t qtype)
{
	size_t n = 12;
	const char *p = dotted;

	memset(b, 0, 12);
	dnswire_wr16(b, 0xbeef);
	dnswire_wr16(b + 2, 0x0100);
	dnswire_wr16(b + 4, 1);
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		b[n++] = (uint8_t)len;
		memcpy(b + n, p, len);
		n += len;
		p += len + (dot ? 1 : 0);
	}
	b[n++] = 0;
	dnswire_wr16(b + n, qtype);
	dnswire_wr16(b + n + 2, 1);
	return n + 4;
}

static void a_query_is_read_and_lowercased(void **state)
{
	uint8_t b[512];
	size_t n = query(b, "Api.GitHub.COM", DNSWIRE_TYPE_A);
	struct dnswire_query q;

	(void)state;
	assert_int_equal(dnswire_query_parse(b, n, &q), 0);
	assert_int_equal(q.id, 0xbeef);
	assert_int_equal(q.qtype, DNSWIRE_TYPE_A);
	assert_int_equal(q.qclass, DNSWIRE_CLASS_IN);
	assert_true(q.host_name);
	assert_string_equal(q.name, "api.github.com");
	assert_int_equal(q.qlen, n - 12);
}

static void names_that_are_not_host_names_have_no_text(void **state)
{
	uint8_t b[512];
	struct dnswire_query q;
	size_t n;

	(void)state;
	/* a label holding a dot reads as "api.github.com" but is two labels' worth of text */
	n = query(b, "x", DNSWIRE_TYPE_A);
	memcpy(b + 12, "\x0e" "api.github.com" "\x00", 16);
	dnswire_wr16(b + 28, DNSWIRE_TYPE_A);
	dnswire_wr16(b + 30, 1);
	n = 32;
	assert_int_equal(dnswire_query_parse(b, n, &q), 0);
	assert_false(q.host_name);
	assert_string_equal(q.name, "");
	/* a NUL inside a label, and the root */
	n = query(b, "a.b", DNSWIRE_TYPE_A);
	b[13] = 0;
	assert_int_equal(dnswire_query_parse(b, n, &q), 0);
	assert_false(q.host_name);
	n = query(b, "", 2);
	assert_int_equal(dnswire_query_parse(b, n, &q), 0);
	assert_false(q.host_name);
	assert_int_equal(q.qtype, 2);
}

static void malformed_queries_are_refused(void **state)
{
	uint8_t b[600], c[600];
	size_t n = query(b, "web.test", DNSWIRE_TYPE_A);
	struct dnswire_query q;

	(void)state;
	memcpy(c, b, n);
	c[2] |= 0x80;                                           /* a response */
	assert_int_equal(dnswire_query_parse(c, n, &q), -EBADMSG);
	memcpy(c, b, n);
	c[2] |= 0x28;                                           /* opcode UPDATE */
	assert_int_equal(dnswire_query_parse(c, n, &q), -EBADMSG);
	memcpy(c, b, n);
	dnswire_wr16(c + 4, 2);                                 /* two questions */
	assert_int_equal(dnswire_query_parse(c, n, &q), -EBADMSG);
	memcpy(c, b, n);
	dnswire_wr16(c + 6, 1);                                 /* an answer record */
	assert_int_equal(dnswire_query_parse(c, n, &q), -EBADMSG);
	memcpy(c, b, n);
	dnswire_wr16(c + 10, 2);                                /* two additionals */
	assert_int_equal(dnswire_query_parse(c, n, &q), -EBADMSG);
	assert_int_equal(dnswire_query_parse(b, 11, &q), -EBADMSG);     /* short header */
	assert_int_equal(dnswire_query_parse(b, n - 1, &q), -EBADMSG);  /* class cut */
	assert_int_equal(dnswire_query_parse(b, 16, &q), -EBADMSG);     /* name runs off */
	memcpy(c, b, 12);
	memcpy(c + 12, "\xc0\x0c\x00\x01\x00\x01", 6);          /* compression pointer */
	assert_int_equal(dnswire_query_parse(c, 18, &q), -EBADMSG);
	memcpy(c, b, 12);
	c[12] = 64;                                             /* label length 64 */
	memset(c + 13, 'a', 64);
	c[77] = 0;
	assert_int_equal(dnswire_query_parse(c, 82, &q), -EBADMSG);
	/* 5 labels of 63: 320 bytes of name, over 255 */
	n = 12;
	memcpy(c, b, 12);
	for (int i = 0; i < 5; i++) {
		c[n++] = 63;
		memset(c + n, 'a', 63);
		n += 63;
	}
	c[n++] = 0;
	memcpy(c + n, "\x00\x01\x00\x01", 4);
	assert_int_equal(dnswire_query_parse(c, n + 4, &q), -EBADMSG);
}

static void the_longest_host_name_fits(void **state)
{
	uint8_t b[600];
	char name[300];
	struct dnswire_query q;
	size_t n;

	(void)state;
	/* 3 x 63 + 61 + dots = 253 characters: the wire form is exactly 255 bytes */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	n = query(b, name, DNSWIRE_TYPE_A);
	assert_int_equal(dnswire_query_parse(b, n, &q), 0);
	assert_true(q.host_name);
	assert_int_equal(strlen(q.name), 253);
}

static void empty_replies_copy_id_question_and_rd(void **state)
{
	uint8_t b[512], r[512];
	size_t n = query(b, "tunnel.evil.test", 16);
	struct dnswire_query q;
	size_t len;

	(void)state;
	b[10] = 0;
	b[11] = 0;
	assert_int_equal(dnswire_query_parse(b, n, &q), 0);
	len = dnswire_reply_empty(b, &q, DNSWIRE_RCODE_REFUSED, r, sizeof(r));
	assert_int_equal(len, 12 + q.qlen);
	assert_int_equal(dnswire_rd16(r), 0xbeef);
	assert_int_equal(r[2], 0x81);          /* QR, opcode 0, RD copied */
	assert_int_equal(r[3], 0x85);          /* RA, REFUSED */
	assert_int_equal(dnswire_rd16(r + 4), 1);
	assert_int_equal(dnswire_rd16(r + 6), 0);
	assert_int_equal(dnswire_rd16(r + 10), 0);
	assert_memory_equal(r + 12, b + 12, q.qlen);
	len = dnswire_reply_empty(b, &q, DNSWIRE_RCODE_NOERROR, r, sizeof(r));
	assert_int_equal(r[3], 0x80);
	assert_int_equal(dnswire_reply_empty(b, &q, 0, r, 12 + q.qlen - 1), 0);
	(void)len;
}

static void the_framer_takes_a_message_byte_by_byte(void **state)
{
	struct dnswire_framer f = { 0 };
	uint8_t in[2 + 40];
	uint8_t *msg;
	size_t len;
	int r = 0;

	(void)state;
	dnswire_wr16(in, 40);
	for (int i = 0; i < 40; i++)
		in[2 + i] = (uint8_t)i;
	assert_false(dnswire_framer_busy(&f));
	for (size_t i = 0; i < sizeof(in); i++) {
		assert_int_equal(dnswire_framer_want(&f), i < 2 ? 2 - i : sizeof(in) - i);
		r = dnswire_framer_feed(&f, in + i, 1);
		assert_int_equal(r, i + 1 == sizeof(in) ? 1 : 0);
		assert_true(dnswire_framer_busy(&f));
	}
	msg = dnswire_framer_take(&f, &len);
	assert_int_equal(len, 40);
	assert_memory_equal(msg, in + 2, 40);
	free(msg);
	assert_false(dnswire_framer_busy(&f));
	assert_int_equal(dnswire_framer_want(&f), 2);
}

static void the_framer_refuses_short_lengths_and_overfeeding(void **state)
{
	struct dnswire_framer f = { 0 };
	uint8_t in[4] = { 0, 11, 0, 0 };
	uint8_t big[70000] = { 0xff, 0xff };

	(void)state;
	assert_int_equal(dnswire_framer_feed(&f, in, 2), -EBADMSG);
	dnswire_framer_reset(&f);
	assert_int_equal(dnswire_framer_feed(&f, in, 3), -EINVAL);  /* more than it wants */
	/* the largest length: 65535 bytes wanted, taken in one go */
	assert_int_equal(dnswire_framer_feed(&f, big, 2), 0);
	assert_int_equal(dnswire_framer_want(&f), 65535);
	assert_int_equal(dnswire_framer_feed(&f, big + 2, 65535), 1);
	dnswire_framer_reset(&f);  /* frees the message not taken */
	assert_false(dnswire_framer_busy(&f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_query_is_read_and_lowercased),
		cmocka_unit_test(names_that_are_not_host_names_have_no_text),
		cmocka_unit_test(malformed_queries_are_refused),
		cmocka_unit_test(the_longest_host_name_fits),
		cmocka_unit_test(empty_replies_copy_id_question_and_rd),
		cmocka_unit_test(the_framer_takes_a_message_byte_by_byte),
		cmocka_unit_test(the_framer_refuses_short_lengths_and_overfeeding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
