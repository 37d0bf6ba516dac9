/* tests/fuzz/ctl_host.c - the host end of the control protocol fed hostile guest bytes.
 * Three execs are open (streams 1-3) so data, credit, exit and error frames reach real state;
 * HELLO is answered with CONFIG as the sandbox does; stream 2 is released on its first output
 * (its later frames must reach nothing), and stdin is queued on stream 1. The channel may end
 * (that is the right answer to garbage); the process must not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/vmm.h"

static struct ctl *fz_ctl;
static uint32_t fz_streams[3];

static void fz_output(void *arg, int fd, const uint8_t *d, size_t n)
{
	(void)fd;
	(void)d;
	uint32_t stream = *(uint32_t *)arg;
	ctl_exec_consumed(fz_ctl, stream, n);
	if (stream == fz_streams[1])
		ctl_exec_release(fz_ctl, stream);
}
static void fz_exited(void *arg, int code, int sig) { (void)arg; (void)code; (void)sig; }
static void fz_failed(void *arg, const char *msg) { (void)arg; (void)msg; }
static void fz_stdin_ready(void *arg) { ctl_exec_stdin(fz_ctl, *(uint32_t *)arg, "more", 4); }
static const struct ctl_exec_ops fz_exec_ops = { .output = fz_output, .exited = fz_exited,
						 .failed = fz_failed, .stdin_ready = fz_stdin_ready };
static void fz_hello(void *arg, uint32_t version, const char *info)
{
	(void)arg;
	(void)version;
	(void)info;
	struct proto_config cfg = { .hostname = "fuzz" };
	ctl_configure(fz_ctl, &cfg);
}
static const struct ctl_ops fz_ops = { .hello = fz_hello };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		return 0;
	int big = 4 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (ctl_new(sv[0], &fz_ops, NULL, &fz_ctl) < 0)
		abort();
	char *argv[] = { "true", NULL };
	struct proto_exec x = { .argv = argv };
	for (int i = 0; i < 3; i++)
		ctl_exec(fz_ctl, &x, &fz_exec_ops, &fz_streams[i], &fz_streams[i]);
	ctl_exec_stdin(fz_ctl, fz_streams[0], "input", 5);
	size_t off = 0;
	while (off < size) {
		ssize_t n = write(sv[1], data + off, size - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 64 && ctl_on_readable(fz_ctl) == 0; i++)
		;
	ctl_free(fz_ctl);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
