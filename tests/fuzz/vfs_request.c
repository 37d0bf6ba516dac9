/* tests/fuzz/vfs_request.c - the files channel as the supervisor sees it: arbitrary guest bytes
 * are cut into messages by their length (as chan.c does), each message goes through the one
 * decoder, and every request it accepts is served against a memory workspace (replies go to
 * /dev/null). Decoded names must be what the decoder promises; nothing may crash, read out of
 * bounds or leak, whatever ids, handles, sizes and names the guest forges. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfs/internal.h"

static struct vfs *v;
static uint8_t msg[VFS_REQ_MAX], reply[VFS_REQ_MAX];

static void setup(void)
{
	struct vfs_config c = { .workspace = (char *)"/workspace", .memory_limit = 8u << 20 };
	struct vfs_mount_cfg m = { .guest_path = (char *)"/workspace", .type = VFS_MOUNT_MEMORY };
	c.mounts = &m;
	c.n_mounts = 1;
	c.emit_events = true;
	struct ml_err e;
	if (vfs_new(&c, "/tmp", &v, &e) < 0)
		abort();
	v->fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct { struct fuse_in_header h; struct fuse_init_in i; } init = {
		.h = { .len = sizeof(init), .opcode = FUSE_INIT, .unique = 1 },
		.i = { .major = 7, .minor = 37, .flags = FUSE_DO_READDIRPLUS } };
	struct vfs_req r;
	if (vfs_req_decode((const uint8_t *)&init, sizeof(init), &r) < 0)
		abort();
	fuse_dispatch(v, &r, reply);
}

static void check(const struct vfs_req *r, size_t len)
{
	const uint8_t *lo = msg, *hi = msg + len;
	if (r->name && ((const uint8_t *)r->name < lo || (const uint8_t *)r->name + strlen(r->name) >= hi))
		abort();
	if (r->name2 && ((const uint8_t *)r->name2 < lo || (const uint8_t *)r->name2 + strlen(r->name2) >= hi))
		abort();
	if (r->data_len && (r->data < lo || r->data + r->data_len > hi))
		abort();
	bool entry = r->h.opcode != FUSE_SETXATTR && r->h.opcode != FUSE_GETXATTR &&
		     r->h.opcode != FUSE_REMOVEXATTR;
	if (entry && r->name && vfs_name_check(r->name, strlen(r->name)) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!v)
		setup();
	for (size_t off = 0; size - off >= VFS_HDR_LEN;) {
		uint32_t len;
		memcpy(&len, data + off, sizeof(len));
		if (len < VFS_HDR_LEN || len > VFS_REQ_MAX || len > size - off)
			break; /* chan.c closes the channel here */
		memcpy(msg, data + off, len);
		off += len;
		struct vfs_req r;
		if (vfs_req_decode(msg, len, &r) < 0)
			continue;
		check(&r, len);
		/* the agent's hello and sync answers are ours, not the fuzzer's to drive */
		if (r.h.opcode == VFS_AGENT_HELLO || r.h.opcode == VFS_AGENT_SYNC_ACK)
			continue;
		fuse_dispatch(v, &r, reply);
	}
	struct vfs_event ev;
	while (vfs_event_next(v, &ev))
		;
	return 0;
}
