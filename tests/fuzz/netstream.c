/* tests/fuzz/netstream.c - the engine's frame stream (length-prefixed Ethernet frames) fed
 * arbitrary bytes, in arbitrary read sizes: every frame handed out must lie inside what was
 * written, and a bad length must end the stream with -EPROTO, never read past the buffer. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/vmm.h"

static size_t fz_total;

static void fz_frame(void *arg, const uint8_t *f, size_t len)
{
	(void)arg;
	/* touch every byte so ASan sees an overread */
	volatile uint8_t x = 0;
	for (size_t i = 0; i < len; i++)
		x ^= f[i];
	(void)x;
	fz_total += len + 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		return 0;
	struct vmm_netstream *s = NULL;
	if (vmm_netstream_new(sv[1], &s) < 0)
		abort();
	fz_total = 0;
	/* the first byte picks a chunk size, so frames straddle reads */
	size_t chunk = size ? (size_t)data[0] * 37 + 1 : 1, off = size ? 1 : 0;
	int r = 0;
	while (off < size && r == 0) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t w = write(sv[0], data + off, n);
		if (w <= 0)
			break;
		off += (size_t)w;
		r = vmm_netstream_read(s, fz_frame, NULL);
	}
	if (fz_total > size)
		abort();
	if (r != 0 && r != -EPROTO)
		abort();
	/* the output side: queue what we got back and flush it */
	if (size >= 1 && size <= VMM_NET_FRAME_MAX && vmm_netstream_queue(s, data, size) == 0)
		vmm_netstream_flush(s);
	vmm_netstream_free(s);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
