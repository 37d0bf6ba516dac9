/* tests/unit/slirpnet_world.h - the in-process world slirpnet_flow_test.c drives: a fake guest
 * TCP stack (conn_*), an echo handler for the flows slirpnet hands out, a fake DNS upstream,
 * and the step/run_until loop. Test-only; included once, after <cmocka.h>. */
#ifndef ML_TESTS_SLIRPNET_WORLD_H
#define ML_TESTS_SLIRPNET_WORLD_H

#include <time.h>

#include "slirpnet/frame.h"
#include "slirpnet/slirpnet.h"

/* Each test file uses its own subset of the world's helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define GUEST 0x0a00020fu
#define GW 0x0a000202u
#define DNSA 0x0a000203u
#define WEB 0x5db8d822u  /* 93.184.216.34 */
#define MSS 1460
#define MAXC 256

static const uint8_t gmac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
static const uint8_t hmac[6] = { 0x52, 0x55, 10, 0, 2, 2 };

/* ---- the in-process echo handler ---- */

struct echo {
	int fd;
	struct sockaddr_in src, dst;
	uint8_t buf[16384];
	size_t len;
	bool eof, done;
};

struct world {
	struct slirpnet *sn;
	struct echo echo[MAXC];
	int nflows;
	int dns_fd;                /* the fake upstream DNS server */
	int dns_seen;
	uint16_t dns_up_port[MAXC], dns_up_id[MAXC];  /* source port and id of each query seen */
	bool dns_hold;             /* the fake upstream reads queries but never answers */
	struct conn *conns[MAXC];
	int nconns;
	uint8_t udp_reply[2048];   /* last UDP payload delivered to the guest */
	size_t udp_reply_len;
	uint32_t udp_reply_from;
	uint16_t udp_reply_ids[MAXC];  /* the DNS id of each UDP payload delivered */
	int n_udp_replies;
	int icmp_replies;
	bool dns_bad;              /* the fake upstream appends a stray byte to its replies */
	int learned;               /* dns_answer calls */
	char learned_name[256];
	struct in_addr learned_addr;
	size_t learned_n;
	uint32_t learned_ttl;
	int checks;                /* connect_check calls */
	int dns_checks;            /* dns_check calls */
	struct sockaddr_in last_check;
};

static int deny_port_25(void *arg, const struct sockaddr *dst)
{
	struct world *w = arg;

	w->checks++;
	w->last_check = *(const struct sockaddr_in *)dst;
	return ntohs(((const struct sockaddr_in *)dst)->sin_port) == 25 ? -EACCES : 0;
}

static void on_dns_answer(void *arg, const struct dnswire_answer *a)
{
	struct world *w = arg;

	w->learned++;
	snprintf(w->learned_name, sizeof(w->learned_name), "%s", a->name);
	w->learned_addr = a->addrs[0];
	w->learned_n = a->n;
	w->learned_ttl = a->ttl_s;
}

/* The policy's DNS hook: names under refused.test are refused. */
static int on_dns_check(void *arg, const struct dnswire_query *q, const struct sockaddr_in *server)
{
	struct world *w = arg;
	size_t n = strlen(q->name);

	(void)server;
	w->dns_checks++;
	return n >= 12 && !strcmp(q->name + n - 12, "refused.test") ? -EACCES : 0;
}

static void on_flow(void *arg, int fd, const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	struct world *w = arg;
	struct echo *e = &w->echo[w->nflows++];

	assert_true(w->nflows <= MAXC);
	e->fd = fd;
	e->src = *src;
	e->dst = *dst;
}

static void echo_step(struct echo *e)
{
	if (e->done)
		return;
	if (!e->eof && e->len < sizeof(e->buf)) {
		ssize_t n = read(e->fd, e->buf + e->len, sizeof(e->buf) - e->len);
		if (n == 0)
			e->eof = true;
		else if (n > 0)
			e->len += (size_t)n;
	}
	if (e->len) {
		ssize_t n = write(e->fd, e->buf, e->len);
		if (n > 0) {
			memmove(e->buf, e->buf + n, e->len - (size_t)n);
			e->len -= (size_t)n;
		}
	}
	if (e->eof && !e->len) {
		close(e->fd); /* FIN to the guest */
		e->done = true;
	}
}

/* ---- the fake guest TCP ---- */

struct conn {
	uint16_t sport;
	uint32_t dst;
	uint16_t dport;
	uint32_t isn, snd_nxt, snd_una, rcv_nxt;
	uint32_t peer_wnd;
	bool synack, rst, got_fin, sent_fin;
	bool mute;                 /* ignores everything: a guest that never completes a handshake */
	bool hold;                 /* never sends FIN */
	bool no_ack;               /* takes data in but acknowledges nothing */
	uint32_t rst_seq;          /* of the RST received */
	int after_rst;             /* frames received after the RST */
	const uint8_t *tx;
	size_t tx_len;
	uint8_t *rx;
	size_t rx_len, rx_cap;
	int64_t last_progress;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void guest_tcp(struct world *w, struct conn *c, uint32_t seq, uint8_t flags, const uint8_t *d, size_t len)
{
	uint8_t f[ETH_HDR + 40 + MSS];
	size_t n = frame_build_tcp(f, sizeof(f), gmac, hmac, GUEST, c->sport, c->dst, c->dport, seq, c->rcv_nxt,
				   flags, 65535, d, len);
	assert_true(n > 0);
	slirpnet_input_frame(w->sn, f, n);
}

static struct conn *conn_open(struct world *w, uint16_t sport, uint32_t dst, uint16_t dport, const uint8_t *tx,
			      size_t tx_len)
{
	struct conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_true(w->nconns < MAXC);
	*c = (struct conn){ .sport = sport, .dst = dst, .dport = dport, .isn = sport * 7919u, .tx = tx,
			    .tx_len = tx_len, .last_progress = now_ms() };
	c->snd_nxt = c->snd_una = c->isn + 1;
	w->conns[w->nconns++] = c;
	guest_tcp(w, c, c->isn, TCPF_SYN, NULL, 0);
	return c;
}

static void conn_rx(struct world *w, struct conn *c, const uint8_t *fr, const struct frame *f)
{
	bool ack_needed = false;

	if (c->mute)
		return;
	if (c->rst) {
		c->after_rst++;
		return;
	}
	if (f->tcp_flags & TCPF_RST) {
		c->rst = true;
		c->rst_seq = f->seq;
		return;
	}
	if ((f->tcp_flags & (TCPF_SYN | TCPF_ACK)) == (TCPF_SYN | TCPF_ACK)) {
		c->synack = true;
		c->rcv_nxt = f->seq + 1;
		ack_needed = true;
	}
	if (f->tcp_flags & TCPF_ACK && (int32_t)(f->ack - c->snd_una) > 0) {
		c->snd_una = f->ack;
		c->last_progress = now_ms();
	}
	c->peer_wnd = rd16(fr + f->l4_off + 14);
	if (f->data_len && f->seq == c->rcv_nxt) {
		if (c->rx_len + f->data_len > c->rx_cap) {
			c->rx_cap = (c->rx_len + f->data_len) * 2;
			c->rx = realloc(c->rx, c->rx_cap);
			assert_non_null(c->rx);
		}
		memcpy(c->rx + c->rx_len, fr + f->data_off, f->data_len);
		c->rx_len += f->data_len;
		c->rcv_nxt += (uint32_t)f->data_len;
	}
	if (f->data_len)
		ack_needed = true;
	if ((f->tcp_flags & TCPF_FIN) && f->seq + f->data_len == c->rcv_nxt && !c->got_fin) {
		c->got_fin = true;
		c->rcv_nxt++;
		ack_needed = true;
	}
	if (ack_needed && !c->no_ack)
		guest_tcp(w, c, c->snd_nxt, TCPF_ACK, NULL, 0);
}

/* Sends what the peer's window allows; after everything is acked, FIN. Go-back-N on a stall. */
static void conn_tx(struct world *w, struct conn *c)
{
	if (!c->synack || c->rst)
		return;
	if (c->snd_nxt != c->snd_una && now_ms() - c->last_progress > 300) {
		c->snd_nxt = c->snd_una;
		c->sent_fin = false;
		c->last_progress = now_ms();
	}
	for (;;) {
		size_t off = c->snd_nxt - c->isn - 1, inflight = c->snd_nxt - c->snd_una;
		if (off >= c->tx_len || inflight >= c->peer_wnd)
			break;
		size_t n = c->tx_len - off;
		if (n > MSS)
			n = MSS;
		if (n > c->peer_wnd - inflight)
			n = c->peer_wnd - inflight;
		guest_tcp(w, c, c->snd_nxt, TCPF_ACK | TCPF_PSH, c->tx + off, n);
		c->snd_nxt += (uint32_t)n;
	}
	if (!c->sent_fin && !c->hold && c->snd_una == c->isn + 1 + c->tx_len && c->snd_nxt == c->snd_una) {
		guest_tcp(w, c, c->snd_nxt, TCPF_FIN | TCPF_ACK, NULL, 0);
		c->snd_nxt++;
		c->sent_fin = true;
	}
}

static const uint8_t hello[] = "hello from the guest";

/* A guest server on port 8080 (the target of a host forward): answers SYN with SYN|ACK. */
static void passive_open(struct world *w, const struct frame *f)
{
	struct conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	*c = (struct conn){ .sport = 8080, .dst = f->saddr, .dport = f->sport, .isn = 777000, .tx = hello,
			    .tx_len = sizeof(hello) - 1, .rcv_nxt = f->seq + 1, .synack = true,
			    .peer_wnd = 0, .last_progress = now_ms() };
	c->snd_una = c->isn;
	c->snd_nxt = c->isn + 1;
	w->conns[w->nconns++] = c;
	guest_tcp(w, c, c->isn, TCPF_SYN | TCPF_ACK, NULL, 0);
}

static void guest_rx(struct world *w, const uint8_t *fr, size_t len)
{
	struct frame f;

	assert_int_equal(frame_parse(fr, len, &f), 0); /* slirpnet's output must be well formed */
	assert_memory_equal(fr, gmac, 6);
	if (f.ethertype != ETHT_IPV4)
		return;
	assert_int_equal(f.daddr, GUEST);
	if (f.proto == IPP_UDP) {
		memcpy(w->udp_reply, fr + f.data_off, f.data_len);
		w->udp_reply_len = f.data_len;
		w->udp_reply_from = f.saddr;
		if (w->n_udp_replies < MAXC && f.data_len >= 2)
			w->udp_reply_ids[w->n_udp_replies++] = rd16(fr + f.data_off);
		return;
	}
	if (f.proto == IPP_ICMP) {
		w->icmp_replies++;
		return;
	}
	for (int i = 0; i < w->nconns; i++) {
		struct conn *c = w->conns[i];
		if (c->sport == f.dport && c->dst == f.saddr && c->dport == f.sport)
			return conn_rx(w, c, fr, &f);
	}
	if (f.dport == 8080 && f.tcp_flags == TCPF_SYN)
		return passive_open(w, &f);
	fail_msg("frame for no guest connection: %08x:%u -> port %u", f.saddr, f.sport, f.dport);
}

/* The fake upstream: answers any query with one A record 192.0.2.1. */
static void dns_server_step(struct world *w)
{
	uint8_t q[512];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(w->dns_fd, q, sizeof(q) - 16, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
	static const uint8_t rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1 };

	if (n < 12)
		return;
	if (w->dns_seen < MAXC) {
		w->dns_up_port[w->dns_seen] = ntohs(from.sin_port);
		w->dns_up_id[w->dns_seen] = rd16(q);
	}
	w->dns_seen++;
	if (w->dns_hold)
		return;
	q[2] |= 0x80;
	wr16(q + 6, 1);
	memcpy(q + n, rr, sizeof(rr));
	n += (ssize_t)sizeof(rr);
	if (w->dns_bad)
		q[n++] = 0; /* a byte no record accounts for */
	sendto(w->dns_fd, q, (size_t)n, 0, (struct sockaddr *)&from, fl);
}

static void guest_udp(struct world *w, uint32_t src, uint32_t dst, uint16_t dport, const uint8_t *d, size_t len)
{
	uint8_t f[1024];
	size_t n = frame_build_udp(f, sizeof(f), gmac, hmac, src, 33333, dst, dport, d, len);
	assert_true(n > 0);
	slirpnet_input_frame(w->sn, f, n);
}

/* A query with RD for a name in wire form (wire_len includes the root label's 0). */
static size_t dns_query_for(uint8_t *q, uint16_t id, uint16_t qtype, const char *wire, size_t wire_len)
{
	size_t n = 12;

	memset(q, 0, 12);
	wr16(q, id);
	q[2] = 0x01; /* RD */
	wr16(q + 4, 1);
	memcpy(q + n, wire, wire_len);
	n += wire_len;
	wr16(q + n, qtype);
	wr16(q + n + 2, 1);
	return n + 4;
}

/* A query for example.test of qtype. */
static size_t dns_query(uint8_t *q, uint16_t id, uint16_t qtype)
{
	static const char name[] = "\7example\4test";

	return dns_query_for(q, id, qtype, name, sizeof(name));
}

static bool got_udp_reply(struct world *w) { return w->udp_reply_len > 0; }

static void step(struct world *w)
{
	struct pollfd *fds;
	size_t n;
	int timeout = 2;
	uint8_t fr[2048];
	ssize_t len;

	slirpnet_poll_fill(w->sn, &fds, &n, &timeout);
	if (timeout < 0 || timeout > 2)
		timeout = 2;
	int r = poll(fds, n, timeout);
	slirpnet_poll_done(w->sn, fds, n, r < 0);
	for (int i = 0; i < w->nflows; i++)
		echo_step(&w->echo[i]);
	if (w->dns_fd >= 0)
		dns_server_step(w);
	while ((len = slirpnet_output_frame(w->sn, fr, sizeof(fr))) > 0)
		guest_rx(w, fr, (size_t)len);
	assert_true(len == 0);
	for (int i = 0; i < w->nconns; i++)
		conn_tx(w, w->conns[i]);
}

static void run_until(struct world *w, bool (*done)(struct world *), int max_ms)
{
	int64_t end = now_ms() + max_ms;

	while (!done(w)) {
		if (now_ms() > end)
			fail_msg("timed out");
		step(w);
	}
}

static size_t world_out_queue_bytes;  /* 0 = slirpnet's default */
static const char *world_runtime_dir; /* NULL = slirpnet's own temp dir */

static int setup_with(void **state, unsigned max_flows, unsigned half_open_ms, unsigned linger_ms)
{
	struct world *w = calloc(1, sizeof(*w));
	struct slirpnet_config cfg = { .connect_check = deny_port_25, .flow = on_flow, .dns_answer = on_dns_answer,
				       .dns_check = on_dns_check,
				       .linger_ms = linger_ms, .max_flows = max_flows, .half_open_ms = half_open_ms };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = { htonl(0x7f000001) } };
	socklen_t al = sizeof(a);
	struct ml_err e;

	assert_non_null(w);
	w->dns_fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(w->dns_fd >= 0);
	assert_int_equal(bind(w->dns_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(w->dns_fd, (struct sockaddr *)&a, &al), 0);
	memcpy(cfg.guest_mac, gmac, 6);
	cfg.out_queue_bytes = world_out_queue_bytes;
	cfg.runtime_dir = world_runtime_dir;
	cfg.dns[0] = a;
	cfg.n_dns = 1;
	cfg.arg = w;
	assert_int_equal(slirpnet_new(&cfg, &w->sn, &e), 0);
	*state = w;
	return 0;
}

static int setup(void **state) { return setup_with(state, 0, 0, 50); }
static int setup_small(void **state) { return setup_with(state, 2, 50, 50); }
static int setup_small_long_linger(void **state) { return setup_with(state, 2, 50, 60000); }

static int teardown(void **state)
{
	struct world *w = *state;

	for (int i = 0; i < w->nflows; i++)
		if (!w->echo[i].done)
			close(w->echo[i].fd);
	for (int i = 0; i < w->nconns; i++) {
		free(w->conns[i]->rx);
		free(w->conns[i]);
	}
	slirpnet_free(w->sn);
	close(w->dns_fd);
	free(w);
	return 0;
}

#endif
