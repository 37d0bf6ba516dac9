/* tests/unit/slirpnet_flow_test.c - slirpnet end to end, in-process, no VM and no network: a
 * tiny fake guest TCP/UDP stack written here drives slirpnet_input_frame() and reads what
 * comes back; the flow handler is an in-process echo; DNS goes to a UDP server bound on
 * 127.0.0.1 by the test. Proves: two flows to one destination kept apart, 1 MiB each way
 * intact, FIN both ways and the NAT entry reaped, denied and always-blocked destinations get
 * RST and no fd, DNS A forwarded (its answer reported, a malformed one relayed but not) and
 * AAAA answered empty, TCP DNS to the alias is a flow (other alias ports are not), an aborted
 * flow resets the guest in window and silences libslirp, stray UDP/ICMP/IPv6 counted,
 * half-open flows reaped, a full table resets, 200 concurrent flows, a host forward. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "slirpnet/frame.h"
#include "slirpnet/slirpnet.h"

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
	struct conn *conns[MAXC];
	int nconns;
	uint8_t udp_reply[2048];   /* last UDP payload delivered to the guest */
	size_t udp_reply_len;
	uint32_t udp_reply_from;
	int icmp_replies;
	bool dns_bad;              /* the fake upstream appends a stray byte to its replies */
	int learned;               /* dns_answer calls */
	char learned_name[256];
	struct in_addr learned_addr;
	size_t learned_n;
	uint32_t learned_ttl;
	int checks;                /* connect_check calls */
	struct sockaddr_in last_check;
};

static int deny_port_25(void *arg, const struct sockaddr *dst)
{
	struct world *w = arg;

	w->checks++;
	w->last_check = *(const struct sockaddr_in *)dst;
	return ntohs(((const struct sockaddr_in *)dst)->sin_port) == 25 ? -EACCES : 0;
}

static void on_dns_answer(void *arg, const char *name, const struct in_addr *addrs, size_t n, uint32_t ttl_s)
{
	struct world *w = arg;

	w->learned++;
	snprintf(w->learned_name, sizeof(w->learned_name), "%s", name);
	w->learned_addr = addrs[0];
	w->learned_n = n;
	w->learned_ttl = ttl_s;
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
	w->dns_seen++;
	q[2] |= 0x80;
	wr16(q + 6, 1);
	memcpy(q + n, rr, sizeof(rr));
	n += (ssize_t)sizeof(rr);
	if (w->dns_bad)
		q[n++] = 0; /* a byte no record accounts for */
	sendto(w->dns_fd, q, (size_t)n, 0, (struct sockaddr *)&from, fl);
}

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

static int setup_with(void **state, unsigned max_flows, unsigned half_open_ms, unsigned linger_ms)
{
	struct world *w = calloc(1, sizeof(*w));
	struct slirpnet_config cfg = { .connect_check = deny_port_25, .flow = on_flow, .dns_answer = on_dns_answer,
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

/* ---- tests ---- */


static bool both_flows_finished(struct world *w)
{
	for (int i = 0; i < 2; i++) {
		struct conn *c = w->conns[i];
		if (!c->got_fin || c->rx_len != c->tx_len || !c->sent_fin || c->snd_una != c->snd_nxt)
			return false;
	}
	return true;
}

static bool nat_reaped(struct world *w)
{
	struct slirpnet_stats st;
	slirpnet_stats(w->sn, &st);
	return st.flows_active == 0;
}

static void two_flows_to_one_destination_carry_1mib_each_way(void **state)
{
	struct world *w = *state;
	size_t len = 1 << 20;
	uint8_t *a = malloc(len), *b = malloc(len);
	struct slirpnet_stats st;

	assert_non_null(a);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++) {
		a[i] = (uint8_t)(i * 7 + 1);
		b[i] = (uint8_t)(i * 13 + 5 + (i >> 11));
	}
	struct conn *ca = conn_open(w, 40001, WEB, 443, a, len);
	struct conn *cb = conn_open(w, 40002, WEB, 443, b, len);
	run_until(w, both_flows_finished, 60000);

	assert_int_equal(w->nflows, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ntohl(w->echo[i].dst.sin_addr.s_addr), WEB);
		assert_int_equal(ntohs(w->echo[i].dst.sin_port), 443);
		assert_int_equal(ntohl(w->echo[i].src.sin_addr.s_addr), GUEST);
	}
	assert_int_not_equal(w->echo[0].src.sin_port, w->echo[1].src.sin_port);
	assert_false(ca->rst || cb->rst);
	assert_memory_equal(ca->rx, a, len); /* each flow got back exactly its own bytes */
	assert_memory_equal(cb->rx, b, len);

	run_until(w, nat_reaped, 5000); /* FIN both ways, then linger, then the entry is gone */
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_opened, 2);
	assert_int_equal(st.slots_registered, 2);
	assert_int_equal(st.drops[SLIRPNET_DROP_OUT_NO_FLOW], 0);
	assert_true(st.bytes_per_flow > 0 && st.bytes_per_flow < 128);
	free(a);
	free(b);
}

static void step_n(struct world *w, int n)
{
	while (n-- > 0)
		step(w);
}

static void denied_and_blocked_destinations_get_rst_and_no_fd(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	struct conn *denied = conn_open(w, 41000, WEB, 25, NULL, 0);
	struct conn *meta = conn_open(w, 41001, 0xa9fea9feu, 80, NULL, 0);
	struct conn *slot = conn_open(w, 41002, 0x0a000264u, 1024, NULL, 0);
	struct conn *loop = conn_open(w, 41003, 0x7f000001u, 80, NULL, 0);

	step_n(w, 5);
	assert_true(denied->rst && meta->rst && slot->rst && loop->rst);
	assert_int_equal(w->nflows, 0);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_DENIED], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_BLOCKED], 3);
	assert_int_equal(st.flows_opened, 0);
	assert_int_equal(st.flows_active, 0);
}

static void guest_udp(struct world *w, uint32_t src, uint32_t dst, uint16_t dport, const uint8_t *d, size_t len)
{
	uint8_t f[1024];
	size_t n = frame_build_udp(f, sizeof(f), gmac, hmac, src, 33333, dst, dport, d, len);
	assert_true(n > 0);
	slirpnet_input_frame(w->sn, f, n);
}

static size_t dns_query(uint8_t *q, uint16_t id, uint16_t qtype)
{
	static const uint8_t name[] = "\7example\4test";
	size_t n = 12;

	memset(q, 0, 12);
	wr16(q, id);
	q[2] = 0x01; /* RD */
	wr16(q + 4, 1);
	memcpy(q + n, name, sizeof(name)); /* includes the root label's 0 */
	n += sizeof(name);
	wr16(q + n, qtype);
	wr16(q + n + 2, 1);
	return n + 4;
}

static bool got_udp_reply(struct world *w) { return w->udp_reply_len > 0; }

static void dns_a_is_forwarded_and_reported_and_aaaa_answered_empty(void **state)
{
	struct world *w = *state;
	uint8_t q[64];
	size_t n = dns_query(q, 0x1234, 1);
	struct slirpnet_stats st;

	guest_udp(w, GUEST, DNSA, 53, q, n);
	run_until(w, got_udp_reply, 5000);
	assert_int_equal(w->dns_seen, 1);
	assert_int_equal(w->udp_reply_from, DNSA);
	assert_int_equal(rd16(w->udp_reply), 0x1234);           /* the guest's own id */
	assert_int_equal(rd16(w->udp_reply + 6), 1);            /* one answer */
	assert_memory_equal(w->udp_reply + w->udp_reply_len - 4, "\xc0\x00\x02\x01", 4);
	assert_int_equal(w->learned, 1);                        /* and the policy was told */
	assert_string_equal(w->learned_name, "example.test");
	assert_int_equal(w->learned_n, 1);
	assert_int_equal(ntohl(w->learned_addr.s_addr), 0xc0000201);
	assert_int_equal(w->learned_ttl, 60);

	w->udp_reply_len = 0;
	n = dns_query(q, 0x5678, 28);
	guest_udp(w, GUEST, DNSA, 53, q, n);
	step(w);
	assert_true(got_udp_reply(w));
	assert_int_equal(w->dns_seen, 1);                       /* AAAA never went upstream */
	assert_int_equal(rd16(w->udp_reply), 0x5678);
	assert_int_equal(w->udp_reply[3] & 0x0f, 0);            /* NOERROR */
	assert_int_equal(rd16(w->udp_reply + 6), 0);            /* no answers */

	guest_udp(w, GUEST, DNSA, 53, q, 11);                    /* truncated header */
	q[12] = 0xc0;                                            /* compression in the question */
	guest_udp(w, GUEST, DNSA, 53, q, n);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_DNS_QUERY], 2);
	assert_int_equal(st.dns_forwarded, 1);
	assert_int_equal(st.dns_answered, 1);
	assert_int_equal(st.dns_aaaa_empty, 1);
	assert_int_equal(w->learned, 1);                        /* AAAA taught nothing */

	w->dns_bad = true;                                       /* a malformed A reply: */
	w->udp_reply_len = 0;
	n = dns_query(q, 0x4321, 1);
	guest_udp(w, GUEST, DNSA, 53, q, n);
	run_until(w, got_udp_reply, 5000);
	assert_int_equal(rd16(w->udp_reply), 0x4321);
	assert_int_equal(w->udp_reply_len, n + 16 + 1);          /* relayed as it came */
	assert_int_equal(w->learned, 1);                        /* but taught nothing */
}

static void icmp_echo(struct world *w, uint32_t dst)
{
	uint8_t f[ETH_HDR + 28];
	size_t n = frame_build_udp(f, sizeof(f), gmac, hmac, GUEST, 0, dst, 0, NULL, 0);
	uint8_t *ip = f + ETH_HDR, *ic = ip + 20;

	assert_int_equal(n, sizeof(f));
	ip[9] = IPP_ICMP;
	wr16(ip + 10, 0);
	wr16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	memset(ic, 0, 8);
	ic[0] = 8;
	wr16(ic + 4, 1);
	wr16(ic + 2, csum_fold(csum_add(0, ic, 8)));
	slirpnet_input_frame(w->sn, f, n);
}

static void stray_traffic_is_dropped_and_counted(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	uint8_t f[128];
	struct conn ghost = { .sport = 42000, .dst = WEB, .dport = 443 };

	guest_udp(w, GUEST, 0x08080808u, 123, (const uint8_t *)"ntp?", 4);
	guest_udp(w, 0, 0xffffffffu, 67, (const uint8_t *)"dhcp", 4);
	guest_udp(w, 0x0a000299u, DNSA, 53, (const uint8_t *)"spoof", 5);
	icmp_echo(w, 0x08080808u);
	icmp_echo(w, GW);
	guest_tcp(w, &ghost, 1, TCPF_ACK, NULL, 0);
	size_t n = frame_build_tcp(f, sizeof(f), gmac, hmac, GUEST, 1, WEB, 80, 1, 0, TCPF_SYN, 1, NULL, 0);
	wr16(f + 12, ETHT_IPV6);
	slirpnet_input_frame(w->sn, f, n);
	slirpnet_input_frame(w->sn, f, 3);
	step_n(w, 5);

	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_UDP_POLICY], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_DHCP], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_IP_SRC], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_ICMP_POLICY], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_NO_FLOW], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_IPV6], 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_ETH_SHORT], 1);
	assert_int_equal(w->icmp_replies, 1); /* only the echo to the gateway was answered */
	assert_int_equal(st.frames_out, 1);
	assert_int_equal(w->dns_seen, 0);
}

static bool established(struct world *w) { return w->nflows == 1 && w->conns[w->nconns - 1]->synack; }

static void half_open_flows_are_reaped_and_a_full_table_resets(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	struct conn *a = conn_open(w, 40010, WEB, 80, NULL, 0);
	a->mute = true;
	struct conn *b = conn_open(w, 40011, WEB, 80, NULL, 0);
	b->mute = true;
	struct conn *c = conn_open(w, 40012, WEB, 80, NULL, 0);

	step_n(w, 3);
	assert_true(c->rst);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_FLOW_TABLE_FULL], 1);
	assert_int_equal(st.flows_pending, 2);
	run_until(w, nat_reaped, 2000); /* half_open_ms = 50 */
	struct conn *d = conn_open(w, 40013, WEB, 80, NULL, 0);
	run_until(w, established, 2000);
	assert_false(d->rst);
	assert_int_equal(ntohs(w->echo[0].src.sin_port), 40013);
}

static bool all_finished(struct world *w)
{
	for (int i = 0; i < w->nconns; i++) {
		struct conn *c = w->conns[i];
		if (!c->got_fin || c->rx_len != c->tx_len || !c->sent_fin || c->snd_una != c->snd_nxt)
			return false;
	}
	return true;
}

/* A full table of closed, lingering flows must not refuse a new connection. */
static void lingering_entries_give_way_to_new_flows(void **state)
{
	struct world *w = *state;
	struct slirpnet_stats st;
	static const uint8_t tx[3] = "abc";

	conn_open(w, 46000, WEB, 443, tx, 3);
	conn_open(w, 46001, WEB, 443, tx, 3);
	run_until(w, all_finished, 5000);
	struct conn *c = conn_open(w, 46002, WEB, 443, tx, 3);
	run_until(w, all_finished, 5000);
	assert_false(c->rst);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.linger_evicted, 1);
	assert_int_equal(st.drops[SLIRPNET_DROP_FLOW_TABLE_FULL], 0);
	assert_int_equal(st.flows_opened, 3);
}

static void two_hundred_concurrent_flows_stay_apart(void **state)
{
	struct world *w = *state;
	enum { N = 200, LEN = 3000 };
	static uint8_t tx[N][LEN];
	struct slirpnet_stats st;

	for (int i = 0; i < N; i++) {
		for (int j = 0; j < LEN; j++)
			tx[i][j] = (uint8_t)(i * 31 + j);
		conn_open(w, (uint16_t)(45000 + i), WEB + (uint32_t)(i % 3), 443, tx[i], LEN);
	}
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_pending, N);
	run_until(w, all_finished, 30000);
	for (int i = 0; i < N; i++) {
		assert_false(w->conns[i]->rst);
		assert_memory_equal(w->conns[i]->rx, tx[i], LEN);
	}
	assert_int_equal(w->nflows, N);
	run_until(w, nat_reaped, 5000);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_opened, N);
	assert_int_equal(st.stale_accepts, 0);
	assert_int_equal(st.drops[SLIRPNET_DROP_OUT_NO_FLOW], 0);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_NO_FLOW], 0);
}

static bool guest_server_done(struct world *w)
{
	return w->nconns == 1 && w->conns[0]->got_fin && w->conns[0]->rx_len == 4;
}

/* -p 127.0.0.1:P:8080 in miniature: a host client talks to a server in the guest, through
 * libslirp's host forwarding; both directions and both FINs arrive. */
static void host_forward_reaches_the_guest_server(void **state)
{
	struct world *w = *state;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = { htonl(0x7f000001) } };
	socklen_t al = sizeof(a);
	struct ml_err e;
	char got[64] = { 0 };
	size_t have = 0;
	bool sent = false, eof = false;
	int probe = socket(AF_INET, SOCK_STREAM, 0), cl;
	int64_t end = now_ms() + 5000;

	/* a free port: bind 0, read it back, release it for slirp */
	assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&a, &al), 0);
	close(probe);
	assert_int_equal(slirpnet_add_hostfwd(w->sn, a.sin_addr, ntohs(a.sin_port), 8080, &e), 0);
	cl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(connect(cl, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	while (!(eof && guest_server_done(w))) {
		if (now_ms() > end)
			fail_msg("timed out: client has %zu bytes, eof %d", have, eof);
		step(w);
		if (!sent && write(cl, "ping", 4) == 4) {
			sent = true;
			shutdown(cl, SHUT_WR);
		}
		ssize_t n = read(cl, got + have, sizeof(got) - 1 - have);
		if (n > 0)
			have += (size_t)n;
		eof |= n == 0;
	}
	assert_string_equal(got, (const char *)hello);
	assert_memory_equal(w->conns[0]->rx, "ping", 4);
	close(cl);
}

/* A resolver retrying over TCP after a TC reply: the alias's port 53 is an ordinary flow, asked
 * of connect_check first; every other port of the alias stays part of the blocked vnet. */
static void tcp_dns_to_the_alias_is_a_flow_and_other_alias_ports_are_not(void **state)
{
	struct world *w = *state;
	static const uint8_t query[] = "\0\x1d\x12\x34\x01\0\0\x01\0\0\0\0\0\0\7example\4test\0\0\1\0\1";
	struct slirpnet_stats st;

	struct conn *c = conn_open(w, 40300, DNSA, 53, query, sizeof(query) - 1);
	run_until(w, all_finished, 5000);
	assert_int_equal(w->nflows, 1);
	assert_int_equal(ntohl(w->echo[0].dst.sin_addr.s_addr), DNSA);
	assert_int_equal(ntohs(w->echo[0].dst.sin_port), 53);
	assert_int_equal(w->checks, 1);
	assert_int_equal(ntohl(w->last_check.sin_addr.s_addr), DNSA);
	assert_int_equal(ntohs(w->last_check.sin_port), 53);
	assert_memory_equal(c->rx, query, sizeof(query) - 1);
	assert_false(c->rst);

	struct conn *other = conn_open(w, 40301, DNSA, 54, NULL, 0);
	step_n(w, 5);
	assert_true(other->rst);
	assert_int_equal(w->nflows, 1);
	assert_int_equal(w->checks, 1); /* refused before any policy was asked */
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.drops[SLIRPNET_DROP_TCP_BLOCKED], 1);
	assert_int_equal(w->dns_seen, 0); /* nothing of it went to the UDP upstream */
}

static const uint8_t ping[] = "hello";

/* The guest's "hello" acknowledged and echoed back: both directions have carried data. */
static bool ping_echoed(struct world *w)
{
	struct conn *c = w->conns[0];
	return w->nflows == 1 && c->snd_una == c->isn + sizeof(ping) && c->rx_len == sizeof(ping) - 1;
}

static bool down_received(struct world *w) { return w->conns[0]->rx_len == sizeof(ping) - 1 + 3000; }

/* The handler learns that upstream reset: the guest must see a reset too, at a sequence number
 * it accepts, and libslirp must forget the connection. Data libslirp sent stays unacknowledged
 * (the guest does not ACK), so a surviving tcb would retransmit it; the handler's close() would
 * make it send a FIN. Neither may reach the guest. */
static void abort_resets_the_guest_in_window_and_silences_slirp(void **state)
{
	struct world *w = *state;
	static uint8_t down[3000];
	struct slirpnet_stats st;
	struct conn *c = conn_open(w, 40400, WEB, 443, ping, sizeof(ping) - 1);

	c->hold = true;
	run_until(w, ping_echoed, 5000);
	struct echo *e = &w->echo[0];
	e->done = true; /* the test drives this fd itself */
	c->no_ack = true;
	memset(down, 'd', sizeof(down));
	assert_int_equal(write(e->fd, down, sizeof(down)), (ssize_t)sizeof(down));
	run_until(w, down_received, 5000);

	struct sockaddr_in other = e->src;
	other.sin_port = htons(40999);                /* no such flow: nothing happens */
	slirpnet_flow_abort(w->sn, &other, &e->dst);
	other = e->src;
	other.sin_addr.s_addr = htonl(GUEST + 1);     /* not the guest: nothing either */
	slirpnet_flow_abort(w->sn, &other, &e->dst);
	step(w);
	assert_false(c->rst);

	slirpnet_flow_abort(w->sn, &e->src, &e->dst);
	slirpnet_flow_abort(w->sn, &e->src, &e->dst); /* twice: the second finds it closed */
	close(e->fd);
	step(w);
	assert_true(c->rst);
	assert_int_equal(c->rst_seq, c->rcv_nxt); /* exactly where the guest expects it */

	int64_t end = now_ms() + 3000; /* slirp's retransmit timer is >= 1 s */
	while (now_ms() < end)
		step(w);
	assert_int_equal(c->after_rst, 0);
	slirpnet_stats(w->sn, &st);
	assert_int_equal(st.flows_aborted, 1);
	assert_int_equal(st.flows_active, 0); /* lingered 50 ms, then ended */
	assert_int_equal(st.drops[SLIRPNET_DROP_OUT_NO_FLOW], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(two_flows_to_one_destination_carry_1mib_each_way, setup, teardown),
		cmocka_unit_test_setup_teardown(denied_and_blocked_destinations_get_rst_and_no_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(dns_a_is_forwarded_and_reported_and_aaaa_answered_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(tcp_dns_to_the_alias_is_a_flow_and_other_alias_ports_are_not, setup,
						teardown),
		cmocka_unit_test_setup_teardown(abort_resets_the_guest_in_window_and_silences_slirp, setup, teardown),
		cmocka_unit_test_setup_teardown(stray_traffic_is_dropped_and_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(half_open_flows_are_reaped_and_a_full_table_resets, setup_small, teardown),
		cmocka_unit_test_setup_teardown(lingering_entries_give_way_to_new_flows, setup_small_long_linger, teardown),
		cmocka_unit_test_setup_teardown(two_hundred_concurrent_flows_stay_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(host_forward_reaches_the_guest_server, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
