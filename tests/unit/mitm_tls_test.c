/* tests/unit/mitm_tls_test.c - the TLS-terminating proxy (TCP/443) with real sockets: a GnuTLS
 * client thread is the guest (on a socketpair end), the scripted upstream of proxy_world.h
 * speaks TLS with a certificate from a test CA (given to the proxy as its extra trust).
 * Proves: the per-user CA file (0600, made once, read back the same, a broken one refused with
 * a clear line); the guest sees a leaf for its SNI signed by our CA (IP SAN without SNI), one
 * leaf per name; requests go through and the upstream session is resumed on the next
 * connection; a refused SNI gets its handshake, then the connection closes (event, nothing
 * upstream); a Host that is not the SNI -> 421; an upstream certificate that does not verify ->
 * 502 with a one-line reason; secrets over TLS; a client offering only TLS 1.2 and SHA-1
 * signatures (busybox wget's) is served; garbage, an SNI with control bytes and a client
 * renegotiation end or refuse cleanly. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "proxy_world.h"
#include "mitm/tls.h"
#include "rpc/sandbox.h"

static char dir[] = "/tmp/mitm_tls_XXXXXX";
static char proxy_ca_dir[300], up_ca_file[300];
static char *proxy_pem, *proxy_cert;
static char resp[1 << 20];

/* ---- the guest's TLS client, on its own thread ---- */
struct client {
	int fd;
	const char *sni;          /* NULL: none */
	const char *prio;         /* NULL: GnuTLS defaults */
	const char *request;      /* NULL: handshake only */
	bool renegotiate;         /* TLS 1.2: ask for a new handshake after the first */
	bool keep_open;           /* run_client leaves the connection open (close c->fd later) */
	int hs;                   /* the handshake's result */
	unsigned verify;          /* certificate status against our CA */
	char san[128];            /* the leaf's first SAN */
	size_t len;
	bool done;
	pthread_t t;
};

static void peer_san(struct client *c, gnutls_session_t s)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
	gnutls_x509_crt_t crt;
	size_t sz = sizeof(c->san) - 1;
	unsigned type;

	if (!n || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
	    gnutls_x509_crt_get_subject_alt_name2(crt, 0, c->san, &sz, &type, NULL) >= 0 &&
	    type == GNUTLS_SAN_IPADDRESS && sz == 4) {
		char ip[16];
		inet_ntop(AF_INET, c->san, ip, sizeof(ip));
		snprintf(c->san, sizeof(c->san), "IP:%s", ip);
	}
	gnutls_x509_crt_deinit(crt);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	int r;

	gnutls_certificate_allocate_credentials(&cred);
	gnutls_certificate_set_x509_trust_mem(cred, &(gnutls_datum_t){ (unsigned char *)proxy_cert,
			(unsigned)strlen(proxy_cert) }, GNUTLS_X509_FMT_PEM);
	gnutls_init(&s, GNUTLS_CLIENT);
	if (c->prio)
		gnutls_priority_set_direct(s, c->prio, NULL);
	else
		gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	if (c->sni)
		gnutls_server_name_set(s, GNUTLS_NAME_DNS, c->sni, strlen(c->sni));
	gnutls_transport_set_int(s, c->fd);
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	c->hs = r;
	if (r == 0) {
		gnutls_certificate_verify_peers2(s, &c->verify);
		peer_san(c, s);
		if (c->renegotiate) {
			r = gnutls_handshake(s);   /* refused with a no_renegotiation alert */
			c->hs = r == 0 ? 1 : 0;
		}
		if (c->request)
			gnutls_record_send(s, c->request, strlen(c->request));
		for (; c->request || c->renegotiate;) {
			ssize_t n = gnutls_record_recv(s, resp + c->len, sizeof(resp) - 1 - c->len);

			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				continue;
			if (getenv("TLS_TEST_DEBUG") && n < 0)
				fprintf(stderr, "client recv: %s\n", gnutls_strerror((int)n));
			if (n <= 0)
				break;
			c->len += (size_t)n;
			resp[c->len] = '\0';
			if (response_complete(resp, c->len) && !strstr(resp, "Connection: close"))
				break;
		}
	}
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	__atomic_store_n(&c->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Runs the client against a new guest flow to ip:443 while the loop turns. */
static void run_client(struct pw *w, const char *ip, struct client *c)
{
	int64_t end = ml_now_ms() + 10000;

	resp[0] = '\0';
	c->fd = pw_connect(w, ip, 443);
	fcntl(c->fd, F_SETFL, 0);   /* the client blocks */
	pthread_create(&c->t, NULL, client_main, c);
	while (!__atomic_load_n(&c->done, __ATOMIC_SEQ_CST) && ml_now_ms() < end)
		pw_round(w, 5);
	if (!__atomic_load_n(&c->done, __ATOMIC_SEQ_CST)) {
		shutdown(c->fd, SHUT_RDWR);
		pthread_join(c->t, NULL);
		fail_msg("the TLS client did not finish");
	}
	pthread_join(c->t, NULL);
	if (!c->keep_open)
		close(c->fd);
}

static struct pw *tls_world(char **allow, size_t n, const struct mitm_secret *sec, size_t n_sec)
{
	struct pw *w = pw_new(allow, n, sec, n_sec);
	struct mitm_config c = { .allow_hosts = allow, .n_allow_hosts = n, .block_private_ips = true,
				 .connect_timeout_ms = 2000 };
	struct ml_err e;

	mitm_free(w->m);
	w->ic.ca_pem = proxy_pem;
	w->ic.extra_ca_file = up_ca_file;
	c.intercept = &w->ic;
	if (mitm_new(&c, &w->m, &e) < 0)
		fail_msg("mitm_new: %s", e.msg);
	return w;
}

static struct up *tls_up(void)
{
	struct up *u = up_start();

	u->tls = true;
	return u;
}

/* ---- set-up: the proxy's CA, and a test CA with a leaf for web.test for the upstream ---- */
static int setup(void **state)
{
	char up_dir[300], *up_pem = NULL, *up_cert = NULL;
	gnutls_x509_crt_t ca, leaf;
	gnutls_x509_privkey_t ca_key, leaf_key;
	struct ml_err e;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(proxy_ca_dir, sizeof(proxy_ca_dir), "%s/proxy", dir);
	snprintf(up_dir, sizeof(up_dir), "%s/upstream", dir);
	snprintf(up_ca_file, sizeof(up_ca_file), "%s/upstream-ca.crt", dir);
	if (mitm_ca_load(proxy_ca_dir, &proxy_pem, &proxy_cert, &e) < 0 ||
	    mitm_ca_load(up_dir, &up_pem, &up_cert, &e) < 0)
		fail_msg("mitm_ca_load: %s", e.msg);
	assert_int_equal(ca_parse(up_pem, &ca, &ca_key), 0);
	assert_int_equal(ca_key_new(&leaf_key), 0);
	assert_int_equal(ca_mint(ca, ca_key, leaf_key, "web.test", NULL, time(NULL), &leaf), 0);
	gnutls_certificate_allocate_credentials(&g_up_cred);
	gnutls_x509_crt_t chain[] = { leaf, ca };
	assert_int_equal(gnutls_certificate_set_x509_key(g_up_cred, chain, 2, leaf_key), 0);
	gnutls_session_ticket_key_generate(&g_up_ticket);
	gnutls_x509_crt_deinit(leaf);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(leaf_key);
	gnutls_x509_privkey_deinit(ca_key);
	f = fopen(up_ca_file, "w");
	fputs(up_cert, f);
	fclose(f);
	free(up_pem);
	free(up_cert);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gnutls_certificate_free_credentials(g_up_cred);
	gnutls_free(g_up_ticket.data);
	free(proxy_pem);
	free(proxy_cert);
	ml_rm_rf(dir);
	return 0;
}

static void test_ca_file_made_once_0600(void **state)
{
	char path[400], *pem, *cert;
	struct stat st;
	struct ml_err e;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/ca.pem", proxy_ca_dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(mitm_ca_load(proxy_ca_dir, &pem, &cert, &e), 0);
	assert_string_equal(cert, proxy_cert);   /* read back, not made again */
	assert_non_null(strstr(pem, "PRIVATE KEY"));
	assert_null(strstr(cert, "PRIVATE KEY"));
	free(pem);
	free(cert);
	snprintf(path, sizeof(path), "%s/broken", dir);
	mkdir(path, 0700);
	strcat(path, "/ca.pem");
	f = fopen(path, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	*strrchr(path, '/') = '\0';
	assert_true(mitm_ca_load(path, &pem, &cert, &e) < 0);
	assert_non_null(strstr(e.msg, "is not a CA certificate and key"));
}

static void test_get_through_tls_with_our_leaf(void **state)
{
	(void)state;
	static char *allow[] = { PW_TEST_NAMES };
	struct up *u = tls_up();
	struct pw *w = tls_world(allow, PW_N_TEST_NAMES, NULL, 0);
	struct client c = { .sni = "web.test", .request = "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n",
			    .keep_open = true };

	run_client(w, WEB_IP, &c);
	assert_int_equal(c.hs, 0);
	assert_int_equal(c.verify, 0);   /* chains to our CA */
	assert_string_equal(c.san, "web.test");
	if (!strstr(resp, "\r\n\r\nhello"))
		fail_msg("response: [%s]", resp);
	assert_true(up_log_has(u, "GET /hello HTTP/1.1\r\nHost: web.test\r\n"));
	/* a second guest connection while the first is open: its own upstream connection, whose
	 * TLS session is resumed from the first's; the same leaf */
	struct client c2 = { .sni = "web.test", .request = "GET /resumed HTTP/1.1\r\nHost: web.test\r\n\r\n" };
	run_client(w, WEB_IP, &c2);
	if (!strstr(resp, "\r\n\r\nresumed"))
		fail_msg("second upstream connection not resumed: [%s] handshakes %llu resumed %llu accepts %d",
			 resp, (unsigned long long)w->m->st.tls_upstream_handshakes,
			 (unsigned long long)w->m->st.tls_upstream_resumed, up_accepts(u));
	assert_int_equal(up_accepts(u), 2);
	assert_int_equal(tls_leaves_minted(w->m->icpt->tls), 1);
	/* both closed: their idle upstream connections serve the next guest connection (no
	 * connect, no handshake), even one that asks to close */
	close(c.fd);
	for (int64_t end = ml_now_ms() + 3000; w->m->st.upstream_parked < 2 && ml_now_ms() < end;)
		pw_round(w, 20);
	assert_int_equal(w->m->st.upstream_parked, 2);
	struct client c3 = { .sni = "web.test",
			     .request = "GET /hello HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n" };
	run_client(w, WEB_IP, &c3);
	assert_non_null(strstr(resp, "\r\n\r\nhello"));
	assert_int_equal(up_accepts(u), 2);
	assert_true(w->m->st.upstream_reused >= 1);
	pw_free(w);
	up_stop(u);
}

static void test_refused_sni_closed_after_the_handshake(void **state)
{
	(void)state;
	static char *allow[] = { PW_TEST_NAMES };
	struct up *u = tls_up();
	struct pw *w = tls_world(allow, PW_N_TEST_NAMES, NULL, 0);
	struct client c = { .sni = "other.org", .request = "GET / HTTP/1.1\r\nHost: other.org\r\n\r\n" };

	run_client(w, WEB_IP, &c);
	assert_int_equal(c.hs, 0);
	assert_int_equal(c.len, 0);
	assert_int_equal(up_accepts(u), 0);
	assert_non_null(strstr(w->last_event, "other.org"));
	assert_non_null(strstr(w->last_event, "blocked=1 reason=host not in allowlist"));
	pw_free(w);
	up_stop(u);
}

static void test_host_other_than_sni_is_misdirected(void **state)
{
	(void)state;
	static char *allow[] = { PW_TEST_NAMES };
	struct up *u = tls_up();
	struct pw *w = tls_world(allow, PW_N_TEST_NAMES, NULL, 0);
	struct client c = { .sni = "web.test", .request = "GET /echo HTTP/1.1\r\nHost: api.test\r\n\r\n" };

	run_client(w, WEB_IP, &c);
	assert_non_null(strstr(resp, "HTTP/1.1 421 Misdirected Request"));
	assert_false(up_log_has(u, "api.test"));
	pw_free(w);
	up_stop(u);
}

static void test_bad_upstream_certificate_is_a_502(void **state)
{
	(void)state;
	static char *allow[] = { PW_TEST_NAMES };
	struct up *u = tls_up();
	struct pw *w = tls_world(allow, PW_N_TEST_NAMES, NULL, 0);
	/* bad.test resolves to the same upstream, whose certificate names web.test only */
	struct client c = { .sni = "bad.test", .request = "GET /hello HTTP/1.1\r\nHost: bad.test\r\n\r\n" };

	run_client(w, WEB_IP, &c);
	assert_non_null(strstr(resp, "HTTP/1.1 502 Bad Gateway"));
	assert_non_null(strstr(resp, "upstream certificate verification failed"));
	assert_null(strstr(strstr(resp, "\r\n\r\n") + 4, "\n\n"));   /* one line */
	assert_false(up_log_has(u, "bad.test"));
	pw_free(w);
	up_stop(u);
}

static void test_no_sni_uses_the_address(void **state)
{
	(void)state;
	static char *allow[] = { WEB_IP };
	struct up *u = tls_up();
	struct pw *w = tls_world(allow, 1, NULL, 0);
	struct client c = { .sni = NULL, .request = NULL };

	run_client(w, WEB_IP, &c);
	assert_int_equal(c.hs, 0);
	assert_string_equal(c.san, "IP:" WEB_IP);
	pw_free(w);
	up_stop(u);
}

static void test_sni_that_is_an_address(void **state)
{
	(void)state;
	static char *names[] = { PW_TEST_NAMES }, *literal[] = { WEB_IP };
	struct up *u = tls_up();
	struct pw *w = tls_world(names, PW_N_TEST_NAMES, NULL, 0);
	struct client c = { .sni = WEB_IP, .request = "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n" };

	/* an address in the SNI is checked as an address: a name glob does not allow it */
	run_client(w, WEB_IP, &c);
	assert_int_equal(c.hs, 0);
	assert_int_equal(c.len, 0);
	assert_non_null(strstr(w->last_event, "blocked=1"));
	pw_free(w);
	/* its literal does; the leaf names the address (an IP SAN); the upstream is verified
	 * against the address too, and its certificate names web.test only: 502 */
	w = tls_world(literal, 1, NULL, 0);
	struct client c2 = { .sni = WEB_IP, .request = "GET /hello HTTP/1.1\r\nHost: " WEB_IP "\r\n\r\n" };
	run_client(w, WEB_IP, &c2);
	assert_string_equal(c2.san, "IP:" WEB_IP);
	assert_non_null(strstr(resp, "502 Bad Gateway"));
	assert_non_null(strstr(resp, "upstream certificate verification failed"));
	pw_free(w);
	up_stop(u);
}

static void test_secret_over_tls(void **state)
{
	(void)state;
	static char *hosts[] = { "web.test" };
	char ph[MITM_PLACEHOLDER_LEN + 1], req[256];
	struct mitm_secret s = { .name = "KEY", .value = "tls-secret-value", .hosts = hosts, .n_hosts = 1 };
	struct up *u = tls_up();
	struct pw *w;

	mitm_placeholder_new(ph);
	s.placeholder = ph;
	w = tls_world(NULL, 0, &s, 1);
	snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nHost: web.test\r\nAuthorization: Bearer %s\r\n\r\n", ph);
	struct client c = { .sni = "web.test", .request = req };
	run_client(w, WEB_IP, &c);
	assert_true(up_log_has(u, "Authorization: Bearer tls-secret-value"));
	pw_free(w);
	up_stop(u);
}

static void test_tls12_sha1_only_client(void **state)
{
	(void)state;
	static char *allow[] = { PW_TEST_NAMES };
	struct up *u = tls_up();
	struct pw *w = tls_world(allow, PW_N_TEST_NAMES, NULL, 0);
	/* what busybox wget's own TLS offers */
	struct client c = { .sni = "web.test", .request = "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n",
			    .prio = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-SIGN-ALL:+SIGN-ECDSA-SHA1:+SIGN-RSA-SHA1:%VERIFY_ALLOW_SIGN_WITH_SHA1" };

	run_client(w, WEB_IP, &c);
	assert_int_equal(c.hs, 0);
	assert_non_null(strstr(resp, "hello"));
	pw_free(w);
	up_stop(u);
}

/* A minimal TLS 1.2 ClientHello record naming sni. Returns its length. */
static size_t client_hello(uint8_t *out, const char *sni)
{
	size_t nl = strlen(sni), body = 2 + 32 + 1 + 4 + 2 + 2 + 4 + 5 + nl, i = 0;

	out[i++] = 22, out[i++] = 3, out[i++] = 1, out[i++] = (uint8_t)((body + 4) >> 8), out[i++] = (uint8_t)(body + 4);
	out[i++] = 1, out[i++] = 0, out[i++] = (uint8_t)(body >> 8), out[i++] = (uint8_t)body;
	out[i++] = 3, out[i++] = 3;
	memset(out + i, 0, 32);
	i += 32;
	out[i++] = 0;                                   /* session id */
	out[i++] = 0, out[i++] = 2, out[i++] = 0x13, out[i++] = 0x01;   /* one cipher suite */
	out[i++] = 1, out[i++] = 0;                     /* null compression */
	out[i++] = 0, out[i++] = (uint8_t)(4 + 5 + nl); /* extensions */
	out[i++] = 0, out[i++] = 0, out[i++] = 0, out[i++] = (uint8_t)(5 + nl);   /* server_name */
	out[i++] = 0, out[i++] = (uint8_t)(3 + nl), out[i++] = 0, out[i++] = 0, out[i++] = (uint8_t)nl;
	memcpy(out + i, sni, nl);
	return i + nl;
}

static void test_hostile_hellos_and_renegotiation(void **state)
{
	(void)state;
	static char *allow[] = { PW_TEST_NAMES };
	struct up *u = tls_up();
	struct pw *w = tls_world(allow, PW_N_TEST_NAMES, NULL, 0);
	/* not TLS; a record too short to hold a ClientHello that never completes; a record that
	 * claims 64 KiB */
	const char *garbage[] = { "GET / HTTP/1.1\r\n\r\n", "\x16\x03\x01", "\x16\x03\x01\xff\xff" };
	bool eof;

	for (size_t i = 0; i < sizeof(garbage) / sizeof(*garbage); i++) {
		int fd = pw_connect(w, WEB_IP, 443);

		pw_send(w, fd, garbage[i], strlen(garbage[i]));
		pw_read_until(w, fd, resp, sizeof(resp), 3000, NULL, &eof);
		if (!eof)
			fail_msg("garbage %zu: the flow stayed open", i);
		close(fd);
	}
	/* a ClientHello whose SNI holds a control byte */
	{
		uint8_t hello[128];
		size_t n = client_hello(hello, "we\x01" "b.test");
		int fd = pw_connect(w, WEB_IP, 443);

		pw_send(w, fd, (const char *)hello, n);
		pw_read_until(w, fd, resp, sizeof(resp), 3000, NULL, &eof);
		assert_true(eof);
		assert_int_equal(strlen(resp), 0);
		close(fd);
	}
	struct client c = { .sni = "web.test", .renegotiate = true, .prio = "NORMAL:-VERS-ALL:+VERS-TLS1.2",
			    .request = "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n" };
	run_client(w, WEB_IP, &c);
	assert_int_equal(c.hs, 0);   /* the renegotiation was refused */
	struct client ok = { .sni = "web.test", .request = "GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n" };
	run_client(w, WEB_IP, &ok);
	if (!strstr(resp, "hello"))
		fail_msg("after the renegotiation: hs %d [%s] parked %llu reused %llu retried %llu", ok.hs, resp,
			 (unsigned long long)w->m->st.upstream_parked, (unsigned long long)w->m->st.upstream_reused,
			 (unsigned long long)w->m->st.upstream_retried);
	pw_free(w);
	up_stop(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_file_made_once_0600),
		cmocka_unit_test(test_get_through_tls_with_our_leaf),
		cmocka_unit_test(test_refused_sni_closed_after_the_handshake),
		cmocka_unit_test(test_host_other_than_sni_is_misdirected),
		cmocka_unit_test(test_bad_upstream_certificate_is_a_502),
		cmocka_unit_test(test_no_sni_uses_the_address),
		cmocka_unit_test(test_sni_that_is_an_address),
		cmocka_unit_test(test_secret_over_tls),
		cmocka_unit_test(test_tls12_sha1_only_client),
		cmocka_unit_test(test_hostile_hellos_and_renegotiation),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
