/* tests/guest/flood_agent.c - a hostile guest agent, for tests/e2e/ctl_hostile.sh only (never
 * installed). PID 1 of a test VM: it boots as far as the real agent does (agent/boot.c), speaks
 * just enough of the control protocol to be handed one exec (HELLO, CONFIG -> READY, EXEC ->
 * STARTED), and then floods the host without ever reading again. The exec's argv picks the
 * flood:
 *   hello N   N replayed HELLO frames (the host must ignore them; before the fix each one was
 *             answered with a whole CONFIG), then "survived" on stdout and EXIT 0
 *   stdout    1-byte STDOUT frames with a HELLO after every 16, forever; the host must cut the
 *             VM off when the output window is overrun, with bounded memory until then
 * Build (static): cc -static -DML_AGENT -I. tests/guest/flood_agent.c agent/boot.c
 *                 agent/fsutil.c agent/proto.c base/err.c base/log.c */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "base/buf.h"
#include "base/log.h"

static void write_all_or_die(int fd, const void *p, size_t n)
{
	if (write_all(fd, p, n) < 0)
		boot_poweroff("flood agent: the control channel is gone");
}

static void send_frame(int fd, uint16_t type, uint32_t stream, const void *p, size_t n)
{
	struct proto_msg m;
	proto_msg_init(&m);
	if (proto_msg_frame(&m, type, stream, p, n) < 0)
		boot_poweroff("flood agent: out of memory");
	write_all_or_die(fd, m.data, m.len);
	proto_msg_free(&m);
}

/* Reads until a frame of type want arrives (the host may connect late: EOF means "not yet"). */
static void wait_frame(int fd, struct proto_reader *rd, uint16_t want, struct proto_exec *x,
		       uint32_t *stream)
{
	for (;;) {
		struct proto_frame f;
		int r;
		while ((r = proto_reader_next(rd, &f)) == 1) {
			if (f.type != want)
				continue;
			*stream = f.stream;
			if (x && proto_exec_decode(f.payload, f.len, x) < 0)
				boot_poweroff("flood agent: bad EXEC");
			return;
		}
		if (r < 0)
			boot_poweroff("flood agent: malformed frame");
		size_t room;
		uint8_t *p = proto_reader_space(rd, &room);
		ssize_t n = p ? read(fd, p, room) : -1;
		if (n > 0)
			proto_reader_commit(rd, (size_t)n);
		else
			usleep(10000);
	}
}

static size_t put_frame(uint8_t *b, uint16_t type, uint32_t stream, const void *p, uint32_t n)
{
	put_u32(b, n);
	put_u16(b + 4, type);
	put_u16(b + 6, 0);
	put_u32(b + 8, stream);
	memcpy(b + PROTO_HDR_LEN, p, n);
	return PROTO_HDR_LEN + n;
}

static const uint8_t hello_payload[] = { PROTO_VERSION, 0, 0, 0, 'a', 'g', 'e', 'n', 't', ' ', 'x' };

static void flood_hello(int fd, uint32_t stream, long count)
{
	static uint8_t batch[64 << 10];
	size_t per = PROTO_HDR_LEN + sizeof(hello_payload), n = 0;
	for (long i = 0; i < count; i++) {
		if (n + per > sizeof(batch)) {
			write_all_or_die(fd, batch, n);
			n = 0;
		}
		n += put_frame(batch + n, PT_HELLO, 0, hello_payload, sizeof(hello_payload));
	}
	write_all_or_die(fd, batch, n);
	send_frame(fd, PT_STDOUT, stream, "survived\n", 9);
	send_frame(fd, PT_STDOUT, stream, NULL, 0);
	send_frame(fd, PT_STDERR, stream, NULL, 0);
	uint8_t exit_payload[8] = { 0 };
	send_frame(fd, PT_EXIT, stream, exit_payload, sizeof(exit_payload));
}

static void flood_stdout(int fd, uint32_t stream)
{
	static uint8_t batch[64 << 10];
	for (;;) {
		size_t n = 0;
		for (int i = 0; n + 64 < sizeof(batch); i++)
			n += i % 17 == 16 ? put_frame(batch + n, PT_HELLO, 0, hello_payload, sizeof(hello_payload))
					  : put_frame(batch + n, PT_STDOUT, stream, "x", 1);
		write_all_or_die(fd, batch, n);
	}
}

/* boot.c's power-off unmounts the extra disks; this agent never mounts any */
void disks_unmount(void)
{
}

int main(void)
{
	boot_mount_early();
	boot_std_fds();
	boot_load_modules("/modules.order", "/lib/modules");
	struct ml_err e = { 0, "" };
	int fd = boot_open_port(AGENT_CTL_PORT, 10000, &e);
	if (fd < 0)
		boot_poweroff(e.msg);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	struct proto_reader rd;
	proto_reader_init(&rd);
	uint32_t stream = 0;
	send_frame(fd, PT_HELLO, 0, hello_payload, sizeof(hello_payload));
	wait_frame(fd, &rd, PT_CONFIG, NULL, &stream);
	send_frame(fd, PT_READY, 0, NULL, 0);
	struct proto_exec x;
	wait_frame(fd, &rd, PT_EXEC, &x, &stream);
	uint8_t pid[4];
	put_u32(pid, 2);
	send_frame(fd, PT_STARTED, stream, pid, sizeof(pid));
	ml_info("flood agent: %s on stream %u; not reading from now on", x.argv[0], stream);
	if (!strcmp(x.argv[0], "hello") && x.argv[1])
		flood_hello(fd, stream, atol(x.argv[1]));
	else
		flood_stdout(fd, stream);
	for (;;)
		pause(); /* PID 1 must not exit */
}
