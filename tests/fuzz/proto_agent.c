/* tests/fuzz/proto_agent.c - the control channel as the agent sees it: arbitrary host bytes go
 * through proto_reader in uneven reads, and every frame it yields is decoded as a config and as
 * an exec request. Anything but a clean frame, "need more", or -EPROTO is a bug. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/proto.h"

static void decode_all(const struct proto_frame *f)
{
	struct proto_config c;
	if (proto_config_decode(f->payload, f->len, &c) == 0) {
		/* the disk decoder's promises: bounded count, a serial, an absolute path */
		if (c.n_disks > PROTO_MAX_DISKS)
			abort();
		for (uint32_t i = 0; i < c.n_disks; i++)
			if (!c.disks[i].serial[0] || strlen(c.disks[i].serial) > PROTO_DISK_SERIAL_MAX ||
			    c.disks[i].path[0] != '/')
				abort();
		proto_config_free(&c);
	}
	struct proto_exec x;
	if (proto_exec_decode(f->payload, f->len, &x) == 0) {
		/* the decoder's promises: argv[0] non-empty, both lists NULL-terminated */
		if (!x.argv || !x.argv[0] || !x.argv[0][0] || !x.env)
			abort();
		for (char **e = x.env; *e; e++)
			(void)strlen(*e);
		proto_exec_free(&x);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_reader r;
	proto_reader_init(&r);
	/* the first byte picks the read size, so frames straddle reads in many ways */
	size_t step = size ? (size_t)(data[0] % 61) + 1 : 1;
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step, room;
		uint8_t *space = proto_reader_space(&r, &room);
		if (!space || room < n)
			abort();
		memcpy(space, data + off, n);
		proto_reader_commit(&r, n);
		struct proto_frame f;
		int got;
		while ((got = proto_reader_next(&r, &f)) == 1)
			decode_all(&f);
		if (got == -EPROTO)
			break; /* the agent powers off here; nothing more is read */
		if (got != 0)
			abort();
	}
	proto_reader_free(&r);
	return 0;
}
