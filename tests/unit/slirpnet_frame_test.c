/* tests/unit/slirpnet_frame_test.c - slirpnet/frame.c: good frames parse to the right fields,
 * every hostile frame (truncated, bad IHL or lengths, bad checksums, fragments, TCP options
 * past the segment) is refused with its reason, checksums (full and RFC 1624 incremental)
 * agree, and the builders produce frames the parser accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "slirpnet/frame.h"
#include "slirpnet/slirpnet.h"

static const uint8_t gmac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
static const uint8_t hmac[6] = { 0x52, 0x55, 10, 0, 2, 2 };
#define GUEST 0x0a00020fu
#define REMOTE 0xc0000201u

static int reason(int r) { return -r - 1; }

static size_t tcp_frame(uint8_t *out, size_t cap, uint8_t flags, const char *data)
{
	return frame_build_tcp(out, cap, gmac, hmac, GUEST, 40000, REMOTE, 443, 1000, 0, flags, 65535,
			       (const uint8_t *)data, data ? strlen(data) : 0);
}

/* Recomputes the IPv4 header checksum after a test corrupted a header field on purpose. */
static void fix_ip_csum(uint8_t *f)
{
	size_t hl = (size_t)(f[ETH_HDR] & 0xf) * 4;
	wr16(f + ETH_HDR + 10, 0);
	wr16(f + ETH_HDR + 10, csum_fold(csum_add(0, f + ETH_HDR, hl)));
}

static void tcp_builder_output_parses(void **state)
{
	uint8_t f[128];
	struct frame p;
	size_t n = tcp_frame(f, sizeof(f), TCPF_SYN, "hi");

	(void)state;
	assert_int_equal(n, ETH_HDR + 40 + 2);
	assert_int_equal(frame_parse(f, n, &p), 0);
	assert_int_equal(p.proto, IPP_TCP);
	assert_int_equal(p.saddr, GUEST);
	assert_int_equal(p.daddr, REMOTE);
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 443);
	assert_int_equal(p.seq, 1000);
	assert_int_equal(p.tcp_flags, TCPF_SYN);
	assert_int_equal(p.data_len, 2);
	assert_memory_equal(f + p.data_off, "hi", 2);
}

static void ethernet_padding_is_accepted(void **state)
{
	uint8_t f[128] = { 0 };
	struct frame p;
	size_t n = tcp_frame(f, sizeof(f), TCPF_ACK, NULL);

	(void)state;
	assert_int_equal(frame_parse(f, n + 6, &p), 0); /* 54 -> 60 bytes, minimum Ethernet */
	assert_int_equal(p.data_len, 0);
}

static void every_truncation_is_refused(void **state)
{
	uint8_t f[128];
	struct frame p;
	size_t n = tcp_frame(f, sizeof(f), TCPF_SYN, "data");

	(void)state;
	for (size_t len = 0; len < n; len++)
		assert_true(frame_parse(f, len, &p) < 0);
	assert_int_equal(reason(frame_parse(f, 10, &p)), SLIRPNET_DROP_ETH_SHORT);
	assert_int_equal(reason(frame_parse(f, ETH_HDR + 10, &p)), SLIRPNET_DROP_IP_HEADER);
}

static void bad_ip_header_fields_are_refused(void **state)
{
	uint8_t f[128], g[128];
	struct frame p;
	size_t n = tcp_frame(f, sizeof(f), TCPF_SYN, NULL);

	(void)state;
	memcpy(g, f, n);
	g[ETH_HDR] = 0x44; /* IHL 4 */
	fix_ip_csum(g);
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_IP_HEADER);
	memcpy(g, f, n);
	g[ETH_HDR] = 0x4f; /* IHL 15: options past the datagram */
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_IP_HEADER);
	memcpy(g, f, n);
	wr16(g + ETH_HDR + 2, (uint16_t)(n - ETH_HDR + 1)); /* total length beyond the frame */
	fix_ip_csum(g);
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_IP_HEADER);
	memcpy(g, f, n);
	wr16(g + ETH_HDR + 2, 19); /* total length below the header */
	fix_ip_csum(g);
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_IP_HEADER);
	memcpy(g, f, n);
	g[ETH_HDR] = 0x65; /* version 6 inside an IPv4 ethertype */
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_IP_HEADER);
	memcpy(g, f, n);
	g[ETH_HDR + 8] ^= 1; /* TTL changed, checksum not */
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_IP_CSUM);
}

static void fragments_are_refused(void **state)
{
	uint8_t f[128];
	struct frame p;
	size_t n = tcp_frame(f, sizeof(f), TCPF_SYN, NULL);

	(void)state;
	wr16(f + ETH_HDR + 6, 0x2000); /* MF */
	fix_ip_csum(f);
	assert_int_equal(reason(frame_parse(f, n, &p)), SLIRPNET_DROP_IP_FRAG);
	wr16(f + ETH_HDR + 6, 0x0001); /* offset 8 */
	fix_ip_csum(f);
	assert_int_equal(reason(frame_parse(f, n, &p)), SLIRPNET_DROP_IP_FRAG);
}

static void tcp_offset_and_checksum_are_checked(void **state)
{
	uint8_t f[128], g[128];
	struct frame p;
	size_t n = tcp_frame(f, sizeof(f), TCPF_SYN, "xy");

	(void)state;
	memcpy(g, f, n);
	g[ETH_HDR + 20 + 12] = 0xf0; /* data offset 60 > 22-byte segment: options overflow */
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_TCP_HEADER);
	memcpy(g, f, n);
	g[ETH_HDR + 20 + 12] = 0x40; /* data offset 16 < 20 */
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_TCP_HEADER);
	memcpy(g, f, n);
	g[n - 1] ^= 0x55;
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_TCP_CSUM);
}

static void udp_lengths_and_checksum_are_checked(void **state)
{
	uint8_t f[128], g[128];
	struct frame p;
	size_t n = frame_build_udp(f, sizeof(f), gmac, hmac, GUEST, 5000, REMOTE, 53, (const uint8_t *)"abcd", 4);

	(void)state;
	assert_int_equal(frame_parse(f, n, &p), 0);
	assert_int_equal(p.data_len, 4);
	memcpy(g, f, n);
	wr16(g + ETH_HDR + 20 + 4, 100); /* UDP length past the datagram */
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_UDP_HEADER);
	memcpy(g, f, n);
	wr16(g + ETH_HDR + 20 + 4, 7);
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_UDP_HEADER);
	memcpy(g, f, n);
	g[n - 1] ^= 1;
	assert_int_equal(reason(frame_parse(g, n, &p)), SLIRPNET_DROP_UDP_CSUM);
	wr16(g + ETH_HDR + 20 + 6, 0); /* checksum 0 = none: accepted */
	assert_int_equal(frame_parse(g, n, &p), 0);
}

static void other_ethertypes_and_protocols_have_reasons(void **state)
{
	uint8_t f[128];
	struct frame p;
	size_t n = tcp_frame(f, sizeof(f), TCPF_SYN, NULL);

	(void)state;
	wr16(f + 12, ETHT_IPV6);
	assert_int_equal(reason(frame_parse(f, n, &p)), SLIRPNET_DROP_IPV6);
	wr16(f + 12, 0x8100);
	assert_int_equal(reason(frame_parse(f, n, &p)), SLIRPNET_DROP_ETHERTYPE);
	wr16(f + 12, ETHT_IPV4);
	f[ETH_HDR + 9] = 47; /* GRE */
	fix_ip_csum(f);
	assert_int_equal(reason(frame_parse(f, n, &p)), SLIRPNET_DROP_IP_PROTO);
}

static void arp_reply_round_trips(void **state)
{
	uint8_t f[64];
	struct frame p;
	size_t n = frame_build_arp_reply(f, sizeof(f), hmac, 0x0a000202, gmac, GUEST);

	(void)state;
	assert_int_equal(n, 42);
	assert_int_equal(frame_parse(f, n, &p), 0);
	assert_int_equal(p.arp_op, 2);
	assert_int_equal(p.arp_spa, 0x0a000202);
	assert_int_equal(p.arp_tpa, GUEST);
	assert_int_equal(reason(frame_parse(f, 41, &p)), SLIRPNET_DROP_ARP_BAD);
	f[ETH_HDR + 4] = 8; /* hardware address length 8 */
	assert_int_equal(reason(frame_parse(f, n, &p)), SLIRPNET_DROP_ARP_BAD);
	assert_int_equal(frame_build_arp_reply(f, 41, hmac, 1, gmac, 2), 0);
}

static void incremental_rewrite_matches_full_checksum(void **state)
{
	uint8_t f[128], g[128];
	struct frame p, q;
	size_t n = tcp_frame(f, sizeof(f), TCPF_ACK | TCPF_PSH, "payload!");

	(void)state;
	assert_int_equal(frame_parse(f, n, &p), 0);
	memcpy(g, f, n);
	frame_rewrite_dst(g, &p, 0x0a000264, 1024);
	assert_int_equal(frame_parse(g, n, &q), 0); /* the parser verifies both checksums */
	assert_int_equal(q.daddr, 0x0a000264);
	assert_int_equal(q.dport, 1024);
	frame_rewrite_dst(g, &q, REMOTE, 443);
	assert_memory_equal(f, g, n);
	frame_rewrite_src(g, &q, 0x01020304, 9);
	assert_int_equal(frame_parse(g, n, &q), 0);
	assert_int_equal(q.saddr, 0x01020304);
	assert_int_equal(q.sport, 9);
}

static void checksum_known_vector(void **state)
{
	/* RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2; checksum = ~ddf2 = 220d. */
	static const uint8_t v[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	uint8_t c[2];

	(void)state;
	assert_int_equal(csum_fold(csum_add(0, v, sizeof(v))), 0x220d);
	wr16(c, 0x220d);
	csum_replace16(c, 0x0001, 0x0002); /* one word +1: checksum -1 */
	assert_int_equal(rd16(c), 0x220c);
	assert_int_equal(csum_fold(csum_add(0, (const uint8_t *)"\x12", 1)), (uint16_t)~0x1200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tcp_builder_output_parses),
		cmocka_unit_test(ethernet_padding_is_accepted),
		cmocka_unit_test(every_truncation_is_refused),
		cmocka_unit_test(bad_ip_header_fields_are_refused),
		cmocka_unit_test(fragments_are_refused),
		cmocka_unit_test(tcp_offset_and_checksum_are_checked),
		cmocka_unit_test(udp_lengths_and_checksum_are_checked),
		cmocka_unit_test(other_ethertypes_and_protocols_have_reasons),
		cmocka_unit_test(arp_reply_round_trips),
		cmocka_unit_test(incremental_rewrite_matches_full_checksum),
		cmocka_unit_test(checksum_known_vector),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
