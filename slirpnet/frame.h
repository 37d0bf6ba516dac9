/* slirpnet/frame.h - internal: bounds-checked parsing of guest frames, checksums, builders.
 * Addresses in struct frame are host byte order; bytes in frames are network order. */
#ifndef ML_SLIRPNET_FRAME_H
#define ML_SLIRPNET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETH_HDR 14
#define ETHT_IPV4 0x0800
#define ETHT_ARP 0x0806
#define ETHT_IPV6 0x86dd
#define IPP_ICMP 1
#define IPP_TCP 6
#define IPP_UDP 17
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

/* What frame_parse learned. Offsets are from the start of the frame and were bounds-checked. */
struct frame {
	uint16_t ethertype;
	/* ARP (Ethernet/IPv4 only) */
	uint16_t arp_op;
	uint32_t arp_spa, arp_tpa;
	/* IPv4 */
	uint8_t proto;
	uint32_t saddr, daddr;
	size_t ip_off, ip_hlen, ip_len; /* ip_len = total length from the header (<= frame) */
	size_t l4_off, l4_len;
	/* TCP / UDP */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t tcp_flags;
	size_t data_off, data_len;      /* payload of TCP or UDP */
	/* ICMP */
	uint8_t icmp_type, icmp_code;
};

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Parses and validates a frame. Returns 0, or a negative enum slirpnet_drop reason - 1
 * (i.e. -(reason + 1)). Checksums of IPv4, TCP, UDP (when not zero) and ICMP are verified. */
int frame_parse(const uint8_t *p, size_t len, struct frame *f);

/* Internet checksum: sum 16-bit big-endian words into a 32-bit accumulator, then fold. */
uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len);
uint16_t csum_fold(uint32_t sum);
/* Pseudo-header sum for TCP/UDP over IPv4 (addresses host order). */
uint32_t csum_pseudo(uint32_t saddr, uint32_t daddr, uint8_t proto, size_t l4_len);
/* RFC 1624 eqn. 3: the checksum field at p (big-endian) after a 16-bit word changed old->new. */
void csum_replace16(uint8_t *check, uint16_t old, uint16_t new_);
void csum_replace32(uint8_t *check, uint32_t old, uint32_t new_);

/* Rewrites the IPv4 source or destination address and TCP/UDP port of a parsed, writable
 * frame, patching the IP and L4 checksums incrementally. */
void frame_rewrite_dst(uint8_t *p, const struct frame *f, uint32_t addr, uint16_t port);
void frame_rewrite_src(uint8_t *p, const struct frame *f, uint32_t addr, uint16_t port);

/* Builders. Each returns the frame length, or 0 if cap is too small. */
size_t frame_build_arp_reply(uint8_t *out, size_t cap, const uint8_t our_mac[6], uint32_t our_ip,
			     const uint8_t their_mac[6], uint32_t their_ip);
size_t frame_build_udp(uint8_t *out, size_t cap, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		       uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
		       const uint8_t *data, size_t len);
size_t frame_build_tcp(uint8_t *out, size_t cap, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		       uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
		       uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window,
		       const uint8_t *data, size_t len);

#endif
