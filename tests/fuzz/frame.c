/* tests/fuzz/frame.c - hostile guest frames through slirpnet_input_frame(), with libslirp
 * behind it. The input is a sequence of [len:2][mode:1][frame:len] records; mode bit 0 asks
 * the harness to make the IPv4 and TCP/UDP/ICMP checksums right first, so the fuzzer gets
 * past the checksum gate into the flow, DNS and slirp paths; mode bit 1 then aborts the flow
 * the frame belongs to (slirpnet_flow_abort, as a handler would on an upstream reset), in
 * whatever state it is. Allowed flows are handed to a handler that closes the fd at once
 * (from an odd guest port, after aborting the flow from inside the callback). No
 * DNS server is configured: nothing can leave the process. Any crash, sanitizer report or
 * leak is a bug. */
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slirpnet/frame.h"
#include "slirpnet/slirpnet.h"

static void close_flow(void *arg, int fd, const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	struct slirpnet **sn = arg;

	if (ntohs(src->sin_port) & 1)
		slirpnet_flow_abort(*sn, src, dst);
	close(fd);
}

/* A fresh stack per input: runs are reproducible, and every allocation of the run must be
 * freed by slirpnet_free (libFuzzer's leak check then means something). */
static struct slirpnet *instance(void)
{
	static struct slirpnet *sn;
	struct slirpnet_config cfg = { .guest_mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, .flow = close_flow,
				       .arg = &sn, .max_flows = 64, .linger_ms = 1, .half_open_ms = 1 };
	struct ml_err e;

	if (slirpnet_new(&cfg, &sn, &e) < 0)
		abort();
	return sn;
}

/* The harness's own bounds checks: it only patches checksum fields that lie inside f. */
static void fix_checksums(uint8_t *f, size_t len)
{
	if (len < ETH_HDR + 20 || rd16(f + 12) != ETHT_IPV4)
		return;
	uint8_t *ip = f + ETH_HDR;
	size_t hl = (size_t)(ip[0] & 0xf) * 4, tot = rd16(ip + 2);
	if (hl < 20 || ETH_HDR + hl > len)
		return;
	wr16(ip + 10, 0);
	wr16(ip + 10, csum_fold(csum_add(0, ip, hl)));
	if (tot < hl || ETH_HDR + tot > len)
		return;
	uint8_t *l4 = ip + hl;
	size_t l4len = tot - hl, at = ip[9] == IPP_TCP ? 16 : ip[9] == IPP_UDP ? 6 : ip[9] == IPP_ICMP ? 2 : 0;
	if (!at || l4len < at + 2)
		return;
	if (ip[9] == IPP_UDP) {
		if (l4len < 8 || rd16(l4 + 4) < 8 || rd16(l4 + 4) > l4len)
			return;
		l4len = rd16(l4 + 4);
	}
	wr16(l4 + at, 0);
	uint32_t sum = ip[9] == IPP_ICMP ? 0 : csum_pseudo(rd32(ip + 12), rd32(ip + 16), ip[9], l4len);
	wr16(l4 + at, csum_fold(csum_add(sum, l4, l4len)));
}

static void abort_flow_of(struct slirpnet *sn, const uint8_t *f, size_t len)
{
	struct frame p;

	if (frame_parse(f, len, &p) < 0 || p.ethertype != ETHT_IPV4 || p.proto != IPP_TCP)
		return;
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(p.sport), .sin_addr = { htonl(p.saddr) } };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(p.dport), .sin_addr = { htonl(p.daddr) } };
	slirpnet_flow_abort(sn, &src, &dst);
}

static void pump(struct slirpnet *sn)
{
	struct pollfd *fds;
	size_t n;
	int timeout = 0;
	uint8_t out[2048];

	slirpnet_poll_fill(sn, &fds, &n, &timeout);
	int r = poll(fds, n, 0);
	slirpnet_poll_done(sn, fds, n, r < 0);
	while (slirpnet_output_frame(sn, out, sizeof(out)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct slirpnet *sn = instance();
	size_t off = 0;

	while (off + 3 <= size) {
		size_t len = (size_t)(data[off] << 8 | data[off + 1]);
		uint8_t mode = data[off + 2];
		off += 3;
		if (len > size - off)
			len = size - off;
		/* An exact-size heap copy, so ASan sees any read past the frame. */
		uint8_t *f = malloc(len ? len : 1);
		if (!f)
			return 0;
		memcpy(f, data + off, len);
		if (mode & 1)
			fix_checksums(f, len);
		slirpnet_input_frame(sn, f, len);
		if (mode & 2)
			abort_flow_of(sn, f, len);
		free(f);
		off += len;
		pump(sn);
	}
	slirpnet_free(sn);
	return 0;
}
