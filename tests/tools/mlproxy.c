/* tests/tools/mlproxy.c - the mitm engine (policy, relay, intercepting HTTP/TLS proxies) as a
 * local proxy on the host, without a VM: each TCP connection accepted on --listen is handed to
 * mitm_flow() as if a guest had dialed --dst. For the benchmarks (bench/mitm.sh) and for trying
 * the proxy with real clients by hand. Not installed; test hooks make it useful:
 *   --resolve NAME=IP    the host-side lookup of NAME answers IP (no DNS)
 *   --map IP:PORT=IP:PORT  an upstream connect to the first goes to the second (so a "public"
 *                        address can lead to a server on loopback)
 * Other flags: --allow GLOB (repeatable), --secret NAME=VALUE@host[,host], --ca DIR (enables TLS
 * interception with the CA in DIR/ca.pem, created if missing), --intercept (force),
 * --no-private-block, --audit FILE, --response-timeout MS, --head-timeout MS.
 * Prints "ready PORT" on stdout once listening; on SIGTERM/SIGINT prints the counters and exits.
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "mitm/intercept.h"
#include "mitm/mitm.h"

#define MAX_HOOKS 32

struct pair {
	char name[256];
	struct sockaddr_in from, to;
};

static struct pair resolves[MAX_HOOKS], maps[MAX_HOOKS];
static int n_resolves, n_maps;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	*a = (struct sockaddr_in){ .sin_family = AF_INET };
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return inet_pton(AF_INET, s, &a->sin_addr) == 1 ? 0 : -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int resolve_hook(const char *name, struct in_addr *out, int max)
{
	for (int i = 0; i < n_resolves; i++)
		if (!strcmp(resolves[i].name, name) && max > 0) {
			out[0] = resolves[i].to.sin_addr;
			return 1;
		}
	return -ENOENT;
}

static void dial_hook(struct sockaddr_in *up)
{
	for (int i = 0; i < n_maps; i++)
		if (maps[i].from.sin_addr.s_addr == up->sin_addr.s_addr &&
		    maps[i].from.sin_port == up->sin_port) {
			*up = maps[i].to;
			return;
		}
}

static int add_secret(struct mitm_secret *s, char *spec)
{
	char *at = strrchr(spec, '@'), *eq = strchr(spec, '='), *h;
	char *ph = malloc(MITM_PLACEHOLDER_LEN + 1);

	if (!at || !eq || eq > at || !ph)
		return -1;
	*at = *eq = '\0';
	s->name = spec;
	s->value = eq + 1;
	if (mitm_placeholder_new(ph) < 0)
		return -1;
	s->placeholder = ph;
	s->hosts = calloc(16, sizeof(char *));
	for (h = strtok(at + 1, ","); h && s->n_hosts < 16; h = strtok(NULL, ","))
		s->hosts[s->n_hosts++] = h;
	printf("secret %s=%s\n", s->name, ph);
	return 0;
}

static void print_stats(struct mitm *m)
{
	struct mitm_stats st;

	mitm_stats(m, &st);
	fprintf(stderr, "mlproxy: flows_total=%llu connect_failed=%llu requests_proxied=%llu "
		"requests_blocked=%llu tls_handshakes=%llu tls_guest_resumed=%llu "
		"tls_upstream_handshakes=%llu tls_upstream_resumed=%llu\n",
		(unsigned long long)st.flows_total, (unsigned long long)st.connect_failed,
		(unsigned long long)st.requests_proxied, (unsigned long long)st.requests_blocked,
		(unsigned long long)st.tls_handshakes, (unsigned long long)st.tls_guest_resumed,
		(unsigned long long)st.tls_upstream_handshakes, (unsigned long long)st.tls_upstream_resumed);
}

static int serve(struct mitm *m, int lfd, const struct sockaddr_in *dst)
{
	struct pollfd *all = NULL;
	size_t cap = 0;

	while (!stop) {
		struct pollfd *mf;
		size_t n;
		int timeout = 1000;

		mitm_poll_fill(m, &mf, &n, &timeout);
		if (n + 1 > cap) {
			cap = (n + 1) * 2;
			all = realloc(all, cap * sizeof(*all));
			if (!all)
				return -ENOMEM;
		}
		all[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		memcpy(all + 1, mf, n * sizeof(*all));
		int r = poll(all, n + 1, timeout);
		if (r < 0 && errno != EINTR)
			return -errno;
		mitm_poll_done(m, all + 1, r < 0 ? 0 : n);
		if (r > 0 && all[0].revents) {
			struct sockaddr_in peer;
			socklen_t len = sizeof(peer);
			int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);

			int one = 1;

			/* the product's guest end is a socketpair; a TCP one must not wait for Nagle */
			if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
				mitm_flow(m, fd, &peer, dst);
			else if (fd >= 0)
				close(fd);
		}
	}
	free(all);
	return 0;
}

int main(int argc, char **argv)
{
	static char *allow[64];
	static struct mitm_secret secrets[16];
	struct mitm_intercept ic = { 0 };
	struct mitm_config c = { .allow_hosts = allow, .block_private_ips = true, .intercept = &ic };
	struct sockaddr_in listen_at = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in dst = { 0 };
	bool force = false;
	char *pem = NULL, *cert = NULL;
	struct ml_err e = { 0 };
	struct mitm *m;
	int one = 1, lfd;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--listen") && v && !parse_addr(v, &listen_at))
			i++;
		else if (!strcmp(a, "--dst") && v && !parse_addr(v, &dst))
			i++;
		else if (!strcmp(a, "--allow") && v && c.n_allow_hosts < 63)
			allow[c.n_allow_hosts++] = argv[++i];
		else if (!strcmp(a, "--secret") && v && ic.n_secrets < 16 && !add_secret(&secrets[ic.n_secrets], argv[i + 1]))
			i++, ic.n_secrets++;
		else if (!strcmp(a, "--resolve") && v && strchr(v, '=') && n_resolves < MAX_HOOKS) {
			struct pair *p = &resolves[n_resolves++];
			snprintf(p->name, sizeof(p->name), "%.*s", (int)(strchr(v, '=') - v), v);
			if (parse_addr(strchr(v, '=') + 1, &p->to) < 0)
				goto usage;
			i++;
		} else if (!strcmp(a, "--map") && v && strchr(v, '=') && n_maps < MAX_HOOKS) {
			struct pair *p = &maps[n_maps++];
			char from[64];
			snprintf(from, sizeof(from), "%.*s", (int)(strchr(v, '=') - v), v);
			if (parse_addr(from, &p->from) < 0 || parse_addr(strchr(v, '=') + 1, &p->to) < 0)
				goto usage;
			i++;
		} else if (!strcmp(a, "--ca") && v) {
			if (mitm_ca_load(argv[++i], &pem, &cert, &e) < 0) {
				fprintf(stderr, "mlproxy: %s\n", e.msg);
				return 1;
			}
			ic.ca_pem = pem;
		} else if (!strcmp(a, "--audit") && v)
			ic.audit_path = argv[++i];
		else if (!strcmp(a, "--response-timeout") && v)
			ic.response_timeout_ms = (unsigned)atoi(argv[++i]);
		else if (!strcmp(a, "--head-timeout") && v)
			ic.head_timeout_ms = (unsigned)atoi(argv[++i]);
		else if (!strcmp(a, "--intercept"))
			force = true;
		else if (!strcmp(a, "--no-private-block"))
			c.block_private_ips = false;
		else
			goto usage;
	}
	if (!dst.sin_port)
		goto usage;
	ic.secrets = secrets;
	ic.extra_ca_file = getenv("SSL_CERT_FILE");   /* upstreams signed by a test CA */
	if (!force && !c.n_allow_hosts && !ic.n_secrets && !ic.ca_pem)
		c.intercept = NULL;
	mitm_resolve_hook = n_resolves ? resolve_hook : NULL;
	mitm_dial_hook = n_maps ? dial_hook : NULL;
	if (mitm_new(&c, &m, &e) < 0) {
		fprintf(stderr, "mlproxy: %s\n", e.msg);
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socklen_t len = sizeof(listen_at);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&listen_at, sizeof(listen_at)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&listen_at, &len) < 0) {
		fprintf(stderr, "mlproxy: listen: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready %u\n", ntohs(listen_at.sin_port));
	fflush(stdout);
	int r = serve(m, lfd, &dst);
	print_stats(m);
	mitm_free(m);
	free(pem);
	free(cert);
	return r < 0 ? 1 : 0;
usage:
	fprintf(stderr, "usage: mlproxy --dst IP:PORT [--listen IP:PORT] [--allow GLOB]... [--secret N=V@h1,h2]... "
		"[--resolve NAME=IP]... [--map IP:PORT=IP:PORT]... [--ca DIR] [--intercept] [--no-private-block] "
		"[--audit FILE] [--response-timeout MS] [--head-timeout MS]\n");
	return 2;
}
