/* vmm/netstream.c - the NIC's frame stream to and from the engine.
 *
 * QEMU's stream netdev writes each frame as a 4-byte big-endian length and the raw Ethernet
 * frame (no virtio-net header, no FCS). Reading one frame per read() would cost two syscalls a
 * frame; instead each call reads as much as the socket has into one buffer and cuts frames out
 * of it, and frames for the guest are gathered in one buffer and written together. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "vmm/vmm.h"

#define IN_CAP (256u << 10)   /* more than one VMM_NET_FRAME_MAX frame, a few per read */
#define OUT_CAP (1u << 20)
#define READS_PER_CALL 8      /* then return, so the other fds of the loop get their turn */

struct vmm_netstream {
	int fd;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_off, out_len;
};

int vmm_netstream_new(int fd, struct vmm_netstream **out)
{
	struct vmm_netstream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = fd;
	s->in = malloc(IN_CAP);
	s->out = malloc(OUT_CAP);
	if (!s->in || !s->out) {
		vmm_netstream_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void vmm_netstream_free(struct vmm_netstream *s)
{
	if (!s)
		return;
	free(s->in);
	free(s->out);
	free(s);
}

/* Hands every whole frame at the front of the buffer to fn and keeps the partial rest. */
static int cut_frames(struct vmm_netstream *s, void (*fn)(void *, const uint8_t *, size_t), void *arg)
{
	struct buf b = { s->in, s->in_len };
	size_t off = 0;
	for (;;) {
		const uint8_t *hdr = buf_get(&b, off, 4);
		if (!hdr)
			break;
		uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
		if (len == 0 || len > VMM_NET_FRAME_MAX)
			return -EPROTO;
		const uint8_t *frame = buf_get(&b, off + 4, len);
		if (!frame)
			break;
		fn(arg, frame, len);
		off += 4 + (size_t)len;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
	return 0;
}

int vmm_netstream_read(struct vmm_netstream *s, void (*fn)(void *, const uint8_t *, size_t), void *arg)
{
	for (int i = 0; i < READS_PER_CALL; i++) {
		ssize_t n = read(s->fd, s->in + s->in_len, IN_CAP - s->in_len);
		if (n == 0)
			return -EPIPE;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		s->in_len += (size_t)n;
		int r = cut_frames(s, fn, arg);
		if (r < 0)
			return r;
	}
	return 0;
}

size_t vmm_netstream_room(const struct vmm_netstream *s)
{
	size_t used = s->out_len - s->out_off;
	return OUT_CAP - used > 4 ? OUT_CAP - used - 4 : 0;
}

int vmm_netstream_queue(struct vmm_netstream *s, const uint8_t *frame, size_t len)
{
	if (len == 0 || len > VMM_NET_FRAME_MAX)
		return -EINVAL;
	if (OUT_CAP - s->out_len < len + 4) {
		/* compact: move what is still unsent to the front */
		memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
		if (OUT_CAP - s->out_len < len + 4)
			return -ENOBUFS;
	}
	uint32_t be = htonl((uint32_t)len);
	memcpy(s->out + s->out_len, &be, 4);
	memcpy(s->out + s->out_len + 4, frame, len);
	s->out_len += len + 4;
	return 0;
}

int vmm_netstream_flush(struct vmm_netstream *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		s->out_off += (size_t)n;
	}
	s->out_off = s->out_len = 0;
	return 0;
}

bool vmm_netstream_wants_write(const struct vmm_netstream *s) { return s->out_off < s->out_len; }
