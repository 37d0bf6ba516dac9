/* slirpnet/frame.c - the only code that reads guest frames. Every header is fetched through
 * buf_get() before a field of it is read; any inconsistency is a drop reason, never a guess. */
#include <string.h>

#include "base/buf.h"
#include "slirpnet/frame.h"
#include "slirpnet/slirpnet.h"

#define DROP(r) (-(int)(r) - 1)

uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	/* Fold early so a 64 KiB payload cannot overflow the accumulator. */
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t csum_pseudo(uint32_t saddr, uint32_t daddr, uint8_t proto, size_t l4_len)
{
	return (saddr >> 16) + (saddr & 0xffff) + (daddr >> 16) + (daddr & 0xffff) + proto + (uint32_t)l4_len;
}

void csum_replace16(uint8_t *check, uint16_t old, uint16_t new_)
{
	uint32_t sum = (uint16_t)~rd16(check);

	sum += (uint16_t)~old;
	sum += new_;
	wr16(check, csum_fold(sum));
}

void csum_replace32(uint8_t *check, uint32_t old, uint32_t new_)
{
	csum_replace16(check, (uint16_t)(old >> 16), (uint16_t)(new_ >> 16));
	csum_replace16(check, (uint16_t)old, (uint16_t)new_);
}

static int parse_arp(const struct buf *b, struct frame *f)
{
	const uint8_t *a = buf_get(b, ETH_HDR, 28);

	if (!a || rd16(a) != 1 || rd16(a + 2) != ETHT_IPV4 || a[4] != 6 || a[5] != 4)
		return DROP(SLIRPNET_DROP_ARP_BAD);
	f->arp_op = rd16(a + 6);
	f->arp_spa = rd32(a + 14);
	f->arp_tpa = rd32(a + 24);
	return 0;
}

static int parse_tcp(const struct buf *b, struct frame *f)
{
	const uint8_t *t = buf_get(b, f->l4_off, 20);
	size_t doff;

	if (!t || f->l4_len < 20)
		return DROP(SLIRPNET_DROP_TCP_HEADER);
	doff = (size_t)(t[12] >> 4) * 4;
	if (doff < 20 || doff > f->l4_len)
		return DROP(SLIRPNET_DROP_TCP_HEADER);
	f->sport = rd16(t);
	f->dport = rd16(t + 2);
	f->seq = rd32(t + 4);
	f->ack = rd32(t + 8);
	f->tcp_flags = t[13];
	f->data_off = f->l4_off + doff;
	f->data_len = f->l4_len - doff;
	const uint8_t *all = buf_get(b, f->l4_off, f->l4_len);
	if (!all || csum_fold(csum_add(csum_pseudo(f->saddr, f->daddr, IPP_TCP, f->l4_len), all, f->l4_len)))
		return DROP(SLIRPNET_DROP_TCP_CSUM);
	return 0;
}

static int parse_udp(const struct buf *b, struct frame *f)
{
	const uint8_t *u = buf_get(b, f->l4_off, 8);
	size_t ulen;

	if (!u || f->l4_len < 8)
		return DROP(SLIRPNET_DROP_UDP_HEADER);
	ulen = rd16(u + 4);
	if (ulen < 8 || ulen > f->l4_len)
		return DROP(SLIRPNET_DROP_UDP_HEADER);
	f->l4_len = ulen;
	f->sport = rd16(u);
	f->dport = rd16(u + 2);
	f->data_off = f->l4_off + 8;
	f->data_len = ulen - 8;
	if (rd16(u + 6) != 0) {
		const uint8_t *all = buf_get(b, f->l4_off, ulen);
		if (!all || csum_fold(csum_add(csum_pseudo(f->saddr, f->daddr, IPP_UDP, ulen), all, ulen)))
			return DROP(SLIRPNET_DROP_UDP_CSUM);
	}
	return 0;
}

static int parse_icmp(const struct buf *b, struct frame *f)
{
	const uint8_t *all = buf_get(b, f->l4_off, f->l4_len);

	if (!all || f->l4_len < 8)
		return DROP(SLIRPNET_DROP_ICMP_HEADER);
	if (csum_fold(csum_add(0, all, f->l4_len)))
		return DROP(SLIRPNET_DROP_ICMP_CSUM);
	f->icmp_type = all[0];
	f->icmp_code = all[1];
	return 0;
}

static int parse_ipv4(const struct buf *b, struct frame *f)
{
	const uint8_t *ip = buf_get(b, ETH_HDR, 20);

	if (!ip || ip[0] >> 4 != 4)
		return DROP(SLIRPNET_DROP_IP_HEADER);
	f->ip_off = ETH_HDR;
	f->ip_hlen = (size_t)(ip[0] & 0xf) * 4;
	f->ip_len = rd16(ip + 2);
	/* The frame may carry Ethernet padding after the datagram, never less than it claims. */
	if (f->ip_hlen < 20 || f->ip_len < f->ip_hlen || !buf_get(b, ETH_HDR, f->ip_len))
		return DROP(SLIRPNET_DROP_IP_HEADER);
	const uint8_t *hdr = buf_get(b, ETH_HDR, f->ip_hlen);
	if (!hdr || csum_fold(csum_add(0, hdr, f->ip_hlen)))
		return DROP(SLIRPNET_DROP_IP_CSUM);
	if ((rd16(ip + 6) & 0x3fff) != 0) /* MF set or a nonzero fragment offset */
		return DROP(SLIRPNET_DROP_IP_FRAG);
	f->proto = ip[9];
	f->saddr = rd32(ip + 12);
	f->daddr = rd32(ip + 16);
	f->l4_off = ETH_HDR + f->ip_hlen;
	f->l4_len = f->ip_len - f->ip_hlen;
	switch (f->proto) {
	case IPP_TCP:
		return parse_tcp(b, f);
	case IPP_UDP:
		return parse_udp(b, f);
	case IPP_ICMP:
		return parse_icmp(b, f);
	default:
		return DROP(SLIRPNET_DROP_IP_PROTO);
	}
}

int frame_parse(const uint8_t *p, size_t len, struct frame *f)
{
	struct buf b = { p, len };
	const uint8_t *eth = buf_get(&b, 0, ETH_HDR);

	memset(f, 0, sizeof(*f));
	if (!eth)
		return DROP(SLIRPNET_DROP_ETH_SHORT);
	f->ethertype = rd16(eth + 12);
	switch (f->ethertype) {
	case ETHT_ARP:
		return parse_arp(&b, f);
	case ETHT_IPV4:
		return parse_ipv4(&b, f);
	case ETHT_IPV6:
		return DROP(SLIRPNET_DROP_IPV6);
	default:
		return DROP(SLIRPNET_DROP_ETHERTYPE);
	}
}

/* The L4 checksum field, or NULL for protocols without ports (and UDP without a checksum). */
static uint8_t *l4_check(uint8_t *p, const struct frame *f)
{
	if (f->proto == IPP_TCP)
		return p + f->l4_off + 16;
	if (f->proto == IPP_UDP && rd16(p + f->l4_off + 6) != 0)
		return p + f->l4_off + 6;
	return NULL;
}

static void rewrite(uint8_t *p, const struct frame *f, size_t addr_at, size_t port_at, uint32_t addr, uint16_t port)
{
	uint8_t *a = p + f->ip_off + addr_at, *pt = p + f->l4_off + port_at, *c = l4_check(p, f);
	uint32_t old_a = rd32(a);
	uint16_t old_p = rd16(pt);

	wr32(a, addr);
	csum_replace32(p + f->ip_off + 10, old_a, addr);
	wr16(pt, port);
	if (c) {
		csum_replace32(c, old_a, addr);
		csum_replace16(c, old_p, port);
		/* UDP uses 0 for "no checksum"; a computed zero is sent as all ones. */
		if (f->proto == IPP_UDP && rd16(c) == 0)
			wr16(c, 0xffff);
	}
}

void frame_rewrite_dst(uint8_t *p, const struct frame *f, uint32_t addr, uint16_t port)
{
	rewrite(p, f, 16, 2, addr, port);
}

void frame_rewrite_src(uint8_t *p, const struct frame *f, uint32_t addr, uint16_t port)
{
	rewrite(p, f, 12, 0, addr, port);
}

static void put_eth(uint8_t *out, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(out, dst, 6);
	memcpy(out + 6, src, 6);
	wr16(out + 12, type);
}

size_t frame_build_arp_reply(uint8_t *out, size_t cap, const uint8_t our_mac[6], uint32_t our_ip,
			     const uint8_t their_mac[6], uint32_t their_ip)
{
	uint8_t *a = out + ETH_HDR;

	if (cap < ETH_HDR + 28)
		return 0;
	put_eth(out, their_mac, our_mac, ETHT_ARP);
	wr16(a, 1);
	wr16(a + 2, ETHT_IPV4);
	a[4] = 6;
	a[5] = 4;
	wr16(a + 6, 2);
	memcpy(a + 8, our_mac, 6);
	wr32(a + 14, our_ip);
	memcpy(a + 18, their_mac, 6);
	wr32(a + 24, their_ip);
	return ETH_HDR + 28;
}

static void put_ipv4(uint8_t *ip, uint8_t proto, uint32_t saddr, uint32_t daddr, size_t l4_len)
{
	memset(ip, 0, 20);
	ip[0] = 0x45;
	wr16(ip + 2, (uint16_t)(20 + l4_len));
	wr16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	wr32(ip + 12, saddr);
	wr32(ip + 16, daddr);
	wr16(ip + 10, csum_fold(csum_add(0, ip, 20)));
}

size_t frame_build_udp(uint8_t *out, size_t cap, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		       uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
		       const uint8_t *data, size_t len)
{
	size_t l4 = 8 + len;
	uint8_t *u = out + ETH_HDR + 20;
	uint16_t c;

	if (len > 65535 - 28 || cap < ETH_HDR + 20 + l4)
		return 0;
	put_eth(out, dst_mac, src_mac, ETHT_IPV4);
	put_ipv4(out + ETH_HDR, IPP_UDP, saddr, daddr, l4);
	wr16(u, sport);
	wr16(u + 2, dport);
	wr16(u + 4, (uint16_t)l4);
	wr16(u + 6, 0);
	if (len)
		memcpy(u + 8, data, len);
	c = csum_fold(csum_add(csum_pseudo(saddr, daddr, IPP_UDP, l4), u, l4));
	wr16(u + 6, c ? c : 0xffff);
	return ETH_HDR + 20 + l4;
}

size_t frame_build_tcp(uint8_t *out, size_t cap, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		       uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
		       uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window,
		       const uint8_t *data, size_t len)
{
	size_t l4 = 20 + len;
	uint8_t *t = out + ETH_HDR + 20;

	if (len > 65535 - 40 || cap < ETH_HDR + 20 + l4)
		return 0;
	put_eth(out, dst_mac, src_mac, ETHT_IPV4);
	put_ipv4(out + ETH_HDR, IPP_TCP, saddr, daddr, l4);
	memset(t, 0, 20);
	wr16(t, sport);
	wr16(t + 2, dport);
	wr32(t + 4, seq);
	wr32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	wr16(t + 14, window);
	if (len)
		memcpy(t + 20, data, len);
	wr16(t + 16, csum_fold(csum_add(csum_pseudo(saddr, daddr, IPP_TCP, l4), t, l4)));
	return ETH_HDR + 20 + l4;
}
