/* tests/unit/proto_test.c - agent/proto.c: config and exec requests survive an encode/decode
 * round trip, the reader reassembles frames fed one byte at a time, and every malformed input
 * (oversized length, unknown type, nonzero flags, truncated TLV, missing argv) is an error. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/proto.h"
#include "base/buf.h"

/* ---- helpers ---- */

/* Feeds bytes into a reader, n at a time, and returns the first frame (or the error). */
static int feed(struct proto_reader *r, const uint8_t *p, size_t len, size_t step, struct proto_frame *f)
{
	int got = 0;
	for (size_t off = 0; off < len && got == 0; off += step) {
		size_t n = len - off < step ? len - off : step, room;
		uint8_t *space = proto_reader_space(r, &room);
		assert_non_null(space);
		assert_true(room >= n);
		memcpy(space, p + off, n);
		proto_reader_commit(r, n);
		got = proto_reader_next(r, f);
	}
	return got;
}

static void header(uint8_t h[PROTO_HDR_LEN], uint32_t len, uint16_t type, uint16_t flags, uint32_t stream)
{
	put_u32(h, len);
	put_u16(h + 4, type);
	put_u16(h + 6, flags);
	put_u32(h + 8, stream);
}

/* The payload of the one frame in m, checked against the length in its header. */
static const uint8_t *payload_of(const struct proto_msg *m, uint32_t *len)
{
	struct cursor c = { { m->data, m->len }, 0, 0 };
	*len = cur_u32(&c);
	assert_int_equal(m->len, PROTO_HDR_LEN + *len);
	return m->data + PROTO_HDR_LEN;
}

/* ---- round trips ---- */

static void config_round_trip_keeps_every_field(void **state)
{
	(void)state;
	struct proto_config in = { .hostname = "box", .hosts = "127.0.0.1 localhost\n",
				   .resolv = "nameserver 10.0.2.3\n", .time_ns = 1234567890123456789ull,
				   .cpu_quota_us = 50000, .mtu = 1500, .network = 1,
				   .ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" };
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_config_encode(&m, &in), 0);
	uint32_t len;
	const uint8_t *p = payload_of(&m, &len);
	struct proto_config out;
	assert_int_equal(proto_config_decode(p, len, &out), 0);
	assert_string_equal(out.hostname, "box");
	assert_string_equal(out.hosts, in.hosts);
	assert_string_equal(out.resolv, in.resolv);
	assert_true(out.time_ns == in.time_ns);
	assert_int_equal(out.cpu_quota_us, 50000);
	assert_int_equal(out.mtu, 1500);
	assert_int_equal(out.network, 1);
	assert_string_equal(out.ca_pem, in.ca_pem);
	proto_config_free(&out);
	proto_msg_free(&m);
}

static void config_disks_round_trip_in_order(void **state)
{
	(void)state;
	struct proto_config in = { .hostname = "box" };
	assert_int_equal(proto_config_add_disk(&in, "disk0", "/data", 0), 0);
	assert_int_equal(proto_config_add_disk(&in, "disk1", "/mnt/ro-cache", PROTO_DISK_RO), 0);
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_config_encode(&m, &in), 0);
	uint32_t len;
	const uint8_t *p = payload_of(&m, &len);
	struct proto_config out;
	assert_int_equal(proto_config_decode(p, len, &out), 0);
	assert_int_equal(out.n_disks, 2);
	assert_string_equal(out.disks[0].serial, "disk0");
	assert_string_equal(out.disks[0].path, "/data");
	assert_int_equal(out.disks[0].flags, 0);
	assert_string_equal(out.disks[1].serial, "disk1");
	assert_string_equal(out.disks[1].path, "/mnt/ro-cache");
	assert_int_equal(out.disks[1].flags, PROTO_DISK_RO);
	proto_config_free(&out);
	in.hostname = NULL; /* not ours to free */
	proto_config_free(&in);
	proto_msg_free(&m);
}

/* One CFG_DISK value built by hand: flags, serial length, serial, path. */
static int decode_disk(const void *val, uint32_t n)
{
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_put_tlv(&m, CFG_DISK, val, n), 0);
	struct proto_config c;
	int r = proto_config_decode(m.data, m.len, &c);
	if (r == 0)
		proto_config_free(&c);
	proto_msg_free(&m);
	return r;
}

static void bad_disk_entries_are_errors(void **state)
{
	(void)state;
	assert_int_equal(decode_disk("\0\0\0\0\5disk0/data", 15), 0);
	assert_int_equal(decode_disk("\0\0\0", 3), -EPROTO);                  /* short flags */
	assert_int_equal(decode_disk("\0\0\0\0", 4), -EPROTO);               /* no serial length */
	assert_int_equal(decode_disk("\0\0\0\0\011disk0", 10), -EPROTO);      /* serial runs past the end */
	assert_int_equal(decode_disk("\0\0\0\0\0/data", 10), -EPROTO);      /* empty serial */
	assert_int_equal(decode_disk("\0\0\0\0\5disk0", 10), -EPROTO);      /* no path */
	assert_int_equal(decode_disk("\0\0\0\0\5disk0data", 14), -EPROTO);  /* relative path */
	assert_int_equal(decode_disk("\0\0\0\0\5disk0/d\0x", 13), -EPROTO); /* NUL in the path */
	assert_int_equal(decode_disk("\0\0\0\0\5Disk0/data", 15), -EPROTO); /* serial outside [a-z0-9-] */
	char longser[4 + 1 + 21 + 2] = { 0 };
	longser[4] = 21;
	memset(longser + 5, 'a', 21);
	memcpy(longser + 26, "/d", 2);
	assert_int_equal(decode_disk(longser, sizeof(longser)), -EPROTO);       /* serial over 20 */
}

static void too_many_disks_are_an_error(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	for (unsigned i = 0; i <= PROTO_MAX_DISKS; i++)
		assert_int_equal(proto_put_tlv(&m, CFG_DISK, "\0\0\0\0\1d/x", 8), 0);
	struct proto_config c;
	assert_int_equal(proto_config_decode(m.data, m.len, &c), -EPROTO);
	struct proto_config in = { 0 };
	for (unsigned i = 0; i < PROTO_MAX_DISKS; i++)
		assert_int_equal(proto_config_add_disk(&in, "d", "/x", 0), 0);
	assert_int_equal(proto_config_add_disk(&in, "d", "/x", 0), -E2BIG);
	assert_int_equal(proto_config_add_disk(&in, "", "/x", 0), -EINVAL);
	proto_config_free(&in);
	proto_msg_free(&m);
}

/* CONFIG tag 9: the workspace's path and owner, nested TLVs; without it no workspace. */
static void config_workspace_round_trip_and_bad_nesting(void **state)
{
	(void)state;
	struct proto_config in = { .hostname = "box", .ws_path = "/workspace", .ws_owner = "1000:1000" };
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_config_encode(&m, &in), 0);
	uint32_t len;
	const uint8_t *p = payload_of(&m, &len);
	struct proto_config out;
	assert_int_equal(proto_config_decode(p, len, &out), 0);
	assert_string_equal(out.ws_path, "/workspace");
	assert_string_equal(out.ws_owner, "1000:1000");
	proto_config_free(&out);
	proto_msg_free(&m);
	in.ws_owner = NULL;
	proto_msg_init(&m);
	assert_int_equal(proto_config_encode(&m, &in), 0);
	p = payload_of(&m, &len);
	assert_int_equal(proto_config_decode(p, len, &out), 0);
	assert_string_equal(out.ws_path, "/workspace");
	assert_null(out.ws_owner);
	proto_config_free(&out);
	proto_msg_free(&m);
	/* a relative path, a nested TLV that runs past its parent, and tag 9 twice are refused */
	static const uint8_t rel[] = { 9, 0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 'w' };
	assert_int_equal(proto_config_decode(rel, sizeof(rel), &out), -EPROTO);
	static const uint8_t over[] = { 9, 0, 7, 0, 0, 0, 1, 0, 9, 0, 0, 0, '/' };
	assert_int_equal(proto_config_decode(over, sizeof(over), &out), -EPROTO);
	static const uint8_t twice[] = { 9, 0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, '/',
					 9, 0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, '/' };
	assert_int_equal(proto_config_decode(twice, sizeof(twice), &out), -EPROTO);
}

static void exec_round_trip_keeps_argv_env_and_options(void **state)
{
	(void)state;
	char *argv[] = { "sh", "-c", "echo hi", "", NULL };
	char *env[] = { "PATH=/bin", "A=b=c", NULL };
	struct proto_exec in = { .argv = argv, .env = env, .cwd = "/tmp", .user = "1000:1000",
				 .flags = EXF_TTY | EXF_STDIN, .rows = 40, .cols = 120 };
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_exec_encode(&m, 7, &in), 0);
	uint32_t len;
	const uint8_t *p = payload_of(&m, &len);
	struct proto_exec out;
	assert_int_equal(proto_exec_decode(p, len, &out), 0);
	for (int i = 0; i < 4; i++)
		assert_string_equal(out.argv[i], argv[i]);
	assert_null(out.argv[4]);
	assert_string_equal(out.env[0], "PATH=/bin");
	assert_string_equal(out.env[1], "A=b=c");
	assert_null(out.env[2]);
	assert_string_equal(out.cwd, "/tmp");
	assert_string_equal(out.user, "1000:1000");
	assert_int_equal(out.flags, EXF_TTY | EXF_STDIN);
	assert_int_equal(out.rows, 40);
	assert_int_equal(out.cols, 120);
	proto_exec_free(&out);
	proto_msg_free(&m);
}

static void exec_without_env_decodes_to_empty_env(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_put_tlv_str(&m, EX_ARGV, "true"), 0);
	struct proto_exec out;
	assert_int_equal(proto_exec_decode(m.data, m.len, &out), 0);
	assert_non_null(out.env);
	assert_null(out.env[0]);
	proto_exec_free(&out);
	proto_msg_free(&m);
}

/* ---- the reader ---- */

static void reader_reassembles_frames_fed_byte_by_byte(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_msg_frame(&m, PT_PING, 0, "abc", 3), 0);
	assert_int_equal(proto_msg_frame(&m, PT_STDIN, 9, NULL, 0), 0);
	assert_int_equal(proto_msg_frame(&m, PT_CREDIT, 9, "\x10\x00\x00\x00", 4), 0);
	struct proto_reader r;
	proto_reader_init(&r);
	struct proto_frame f;
	size_t off = 0;
	int frames = 0;
	for (; off < m.len; off++) {
		size_t room;
		uint8_t *space = proto_reader_space(&r, &room);
		space[0] = m.data[off];
		proto_reader_commit(&r, 1);
		int got = proto_reader_next(&r, &f);
		assert_true(got == 0 || got == 1);
		if (got == 0)
			continue;
		frames++;
		if (frames == 1) {
			assert_int_equal(f.type, PT_PING);
			assert_int_equal(f.len, 3);
			assert_memory_equal(f.payload, "abc", 3);
			assert_int_equal(off + 1, PROTO_HDR_LEN + 3); /* complete exactly at its last byte */
		} else if (frames == 2) {
			assert_int_equal(f.type, PT_STDIN);
			assert_int_equal(f.stream, 9);
			assert_int_equal(f.len, 0);
		} else {
			assert_int_equal(f.type, PT_CREDIT);
			assert_int_equal(f.len, 4);
		}
	}
	assert_int_equal(frames, 3);
	assert_int_equal(proto_reader_next(&r, &f), 0);
	proto_reader_free(&r);
	proto_msg_free(&m);
}

static void reader_rejects_oversized_length(void **state)
{
	(void)state;
	uint8_t h[PROTO_HDR_LEN];
	header(h, PROTO_MAX_PAYLOAD + 1, PT_STDIN, 0, 1);
	struct proto_reader r;
	proto_reader_init(&r);
	struct proto_frame f;
	assert_int_equal(feed(&r, h, sizeof(h), sizeof(h), &f), -EPROTO);
	proto_reader_free(&r);
}

static void reader_accepts_the_largest_payload(void **state)
{
	(void)state;
	uint8_t *big = calloc(1, PROTO_HDR_LEN + PROTO_MAX_PAYLOAD);
	assert_non_null(big);
	header(big, PROTO_MAX_PAYLOAD, PT_STDIN, 0, 1);
	struct proto_reader r;
	proto_reader_init(&r);
	struct proto_frame f;
	assert_int_equal(feed(&r, big, PROTO_HDR_LEN + PROTO_MAX_PAYLOAD, 65536, &f), 1);
	assert_int_equal(f.len, PROTO_MAX_PAYLOAD);
	proto_reader_free(&r);
	free(big);
}

static void reader_rejects_unknown_type(void **state)
{
	(void)state;
	uint16_t bad[] = { 0, 9, 31, 41, 63, 65, 0xffff };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t h[PROTO_HDR_LEN];
		header(h, 0, bad[i], 0, 0);
		struct proto_reader r;
		proto_reader_init(&r);
		struct proto_frame f;
		assert_int_equal(feed(&r, h, sizeof(h), 1, &f), -EPROTO);
		proto_reader_free(&r);
	}
}

static void reader_rejects_nonzero_flags(void **state)
{
	(void)state;
	uint8_t h[PROTO_HDR_LEN];
	header(h, 0, PT_PING, 1, 0);
	struct proto_reader r;
	proto_reader_init(&r);
	struct proto_frame f;
	assert_int_equal(feed(&r, h, sizeof(h), sizeof(h), &f), -EPROTO);
	proto_reader_free(&r);
}

/* ---- TLV and request validation ---- */

static void truncated_tlv_is_an_error(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_put_tlv_str(&m, EX_ARGV, "true"), 0);
	assert_int_equal(proto_put_tlv_str(&m, EX_CWD, "/tmp"), 0);
	struct proto_exec x;
	struct proto_config c;
	/* every cut inside the second TLV (header or value) */
	for (size_t cut = 11; cut < m.len; cut++) {
		assert_int_equal(proto_exec_decode(m.data, cut, &x), -EPROTO);
		assert_int_equal(proto_config_decode(m.data, cut, &c), -EPROTO);
	}
	struct proto_tlv_iter it;
	struct proto_tlv t;
	proto_tlv_iter_init(&it, m.data, 5);
	assert_int_equal(proto_tlv_next(&it, &t), -EPROTO);
	proto_msg_free(&m);
}

static void tlv_length_past_the_payload_is_an_error(void **state)
{
	(void)state;
	uint8_t p[6 + 4];
	put_u16(p, EX_ARGV);
	put_u32(p + 2, 0xffffffffu);
	memcpy(p + 6, "true", 4);
	struct proto_exec x;
	assert_int_equal(proto_exec_decode(p, sizeof(p), &x), -EPROTO);
}

static void exec_without_argv_is_an_error(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_put_tlv_str(&m, EX_ENV, "A=1"), 0);
	assert_int_equal(proto_put_tlv_str(&m, EX_CWD, "/"), 0);
	struct proto_exec x;
	assert_int_equal(proto_exec_decode(m.data, m.len, &x), -EPROTO);
	assert_int_equal(proto_exec_decode(NULL, 0, &x), -EPROTO);
	proto_msg_free(&m);
}

static void exec_with_empty_argv0_or_nul_is_an_error(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_put_tlv(&m, EX_ARGV, "", 0), 0);
	struct proto_exec x;
	assert_int_equal(proto_exec_decode(m.data, m.len, &x), -EPROTO);
	m.len = 0;
	assert_int_equal(proto_put_tlv(&m, EX_ARGV, "a\0b", 3), 0);
	assert_int_equal(proto_exec_decode(m.data, m.len, &x), -EPROTO);
	proto_msg_free(&m);
}

static void wrong_sized_numbers_are_errors(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_put_tlv(&m, CFG_TIME_NS, "\1\2\3\4", 4), 0);
	struct proto_config c;
	assert_int_equal(proto_config_decode(m.data, m.len, &c), -EPROTO);
	m.len = 0;
	assert_int_equal(proto_put_tlv_str(&m, EX_ARGV, "true"), 0);
	assert_int_equal(proto_put_tlv(&m, EX_WINSIZE, "\1\2\3", 3), 0);
	struct proto_exec x;
	assert_int_equal(proto_exec_decode(m.data, m.len, &x), -EPROTO);
	proto_msg_free(&m);
}

static void unknown_tags_are_skipped(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	assert_int_equal(proto_put_tlv_str(&m, 999, "from a newer host"), 0);
	assert_int_equal(proto_put_tlv_str(&m, CFG_HOSTNAME, "h"), 0);
	struct proto_config c;
	assert_int_equal(proto_config_decode(m.data, m.len, &c), 0);
	assert_string_equal(c.hostname, "h");
	proto_config_free(&c);
	proto_msg_free(&m);
}

static void oversized_frame_is_refused_when_built(void **state)
{
	(void)state;
	struct proto_msg m;
	proto_msg_init(&m);
	void *big = calloc(1, PROTO_MAX_PAYLOAD + 1);
	assert_non_null(big);
	assert_int_equal(proto_msg_frame(&m, PT_STDOUT, 1, big, PROTO_MAX_PAYLOAD + 1), -EMSGSIZE);
	assert_int_equal(m.len, 0);
	free(big);
	proto_msg_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_round_trip_keeps_every_field),
		cmocka_unit_test(config_disks_round_trip_in_order),
		cmocka_unit_test(bad_disk_entries_are_errors),
		cmocka_unit_test(too_many_disks_are_an_error),
		cmocka_unit_test(config_workspace_round_trip_and_bad_nesting),
		cmocka_unit_test(exec_round_trip_keeps_argv_env_and_options),
		cmocka_unit_test(exec_without_env_decodes_to_empty_env),
		cmocka_unit_test(reader_reassembles_frames_fed_byte_by_byte),
		cmocka_unit_test(reader_rejects_oversized_length),
		cmocka_unit_test(reader_accepts_the_largest_payload),
		cmocka_unit_test(reader_rejects_unknown_type),
		cmocka_unit_test(reader_rejects_nonzero_flags),
		cmocka_unit_test(truncated_tlv_is_an_error),
		cmocka_unit_test(tlv_length_past_the_payload_is_an_error),
		cmocka_unit_test(exec_without_argv_is_an_error),
		cmocka_unit_test(exec_with_empty_argv0_or_nul_is_an_error),
		cmocka_unit_test(wrong_sized_numbers_are_errors),
		cmocka_unit_test(unknown_tags_are_skipped),
		cmocka_unit_test(oversized_frame_is_refused_when_built),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
