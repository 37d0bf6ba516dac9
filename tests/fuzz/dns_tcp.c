/* tests/fuzz/dns_tcp.c - mitm's TCP DNS flow (mitm/dnsflow.c) end to end: the guest's bytes
 * come from the input (its first two bytes split it: guest stream | upstream bytes), written
 * into a socketpair whose other end mitm serves; allowed queries go to an upstream on
 * 127.0.0.1 that this process plays, answering each query with the rest of the input (its id
 * patched in when the input asks, so real answers get through too). Bounded rounds per input;
 * everything is closed and freed after each (LeakSanitizer sees a leak). Beyond sanitizers:
 * the guest never receives more than one whole message per query it sent plus the framing. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mitm/mitm.h"

static int upstream_lfd = -1;
static uint16_t upstream_port;

static void upstream_listen(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = { htonl(INADDR_LOOPBACK) } };
	socklen_t al = sizeof(a);

	upstream_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (upstream_lfd < 0 || bind(upstream_lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(upstream_lfd, 64) < 0 || getsockname(upstream_lfd, (struct sockaddr *)&a, &al) < 0)
		abort();
	upstream_port = ntohs(a.sin_port);
}

/* The upstream: reads what mitm sent, answers once with the input's reply bytes. */
static void upstream_step(int *ufd, const uint8_t *reply, size_t rlen, bool patch_id, bool *answered)
{
	uint8_t buf[4096];
	ssize_t n;

	if (*ufd < 0 && (*ufd = accept4(upstream_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
		return;
	n = recv(*ufd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n <= 0 || *answered)
		return;
	*answered = true;
	uint8_t *out = malloc(rlen ? rlen : 1);
	if (!out)
		abort();
	memcpy(out, reply, rlen);
	if (patch_id && rlen >= 4 && n >= 4)
		memcpy(out + 2, buf + 2, 2);  /* the id mitm chose */
	(void)send(*ufd, out, rlen, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(out);
}

static void on_abort(void *arg, const struct sockaddr_in *s, const struct sockaddr_in *d)
{
	(void)arg;
	(void)s;
	(void)d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *allow[] = { "web.test", "*.example.test" };
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(40000), .sin_addr = { htonl(0x0a00020f) } };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = { htonl(0x0a000203) } };
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = 2, .n_dns = 1, .abort_flow = on_abort };
	struct mitm *m = NULL;
	struct ml_err e;
	int sv[2], ufd = -1;
	bool answered = false;
	uint8_t sink[8192];

	if (size < 2)
		return 0;
	if (upstream_lfd < 0)
		upstream_listen();
	/* bit 0 of the first byte: patch the id in; the other 15 bits: where the guest part ends */
	size_t split = ((size_t)(data[0] >> 1) << 8 | data[1]) % (size - 1), glen = split;
	const uint8_t *guest = data + 2, *reply = data + 2 + glen;
	size_t rlen = size - 2 - glen;
	bool patch = data[0] & 1;

	c.dns[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(upstream_port),
					 .sin_addr = { htonl(INADDR_LOOPBACK) } };
	if (mitm_new(&c, &m, &e) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	(void)send(sv[0], guest, glen, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(sv[0], SHUT_WR);
	mitm_flow(m, sv[1], &src, &dst);
	/* Rounds until the flow has ended or nothing moved for a few rounds (a flow waiting for an
	 * answer that will not come would otherwise wait for its 10 s timeout). */
	for (int round = 0, idle = 0; round < 40 && idle < 4; round++) {
		struct pollfd *fds;
		size_t n;
		int t = 2, ev;
		bool was = answered, had_ufd = ufd >= 0;
		mitm_dns_poll_fill(m, &fds, &n, &t);
		if (!n && round > 2)
			break;  /* the flow has ended */
		ev = poll(fds, n, 0);  /* everything is local: no waiting, only rounds */
		mitm_dns_poll_done(m, fds, n);
		upstream_step(&ufd, reply, rlen, patch, &answered);
		while (recv(sv[0], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		idle = ev > 0 || answered != was || (ufd >= 0) != had_ufd ? 0 : idle + 1;
	}
	mitm_free(m);
	close(sv[0]);
	if (ufd >= 0)
		close(ufd);
	return 0;
}
