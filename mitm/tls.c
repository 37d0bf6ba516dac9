/* mitm/tls.c - TLS on both ends of an intercepted flow (GnuTLS, nonblocking).
 *
 * Towards the guest we are the server: a leaf for the name the ClientHello asked for, minted
 * once per name and cached (TLS_LEAVES names; the oldest goes first), chained to the CA the
 * guest trusts. The guest link never leaves this machine, so its priorities accept what guest
 * tools speak, down to busybox wget's built-in TLS 1.2 that offers only SHA-1 signature
 * algorithms; session tickets let a reconnecting client skip the full handshake.
 * Towards the upstream we are a strict client: the system trust store plus $SSL_CERT_FILE,
 * the certificate checked against the name (or the address), TLS 1.2 or 1.3, and the last
 * session per host kept for resumption (a new guest connection costs the upstream an
 * abbreviated handshake). A certificate that does not verify fails the upstream with a
 * one-line reason the proxy turns into a 502.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/proxy.h"
#include "mitm/tls.h"

#define TLS_LEAVES 256
#define TLS_LEAF_REMINT_S (7 * 86400)
#define TLS_RESUME 64

/* Both links prefer AES-128-GCM (every byte is decrypted and encrypted again here: the
 * cheaper cipher is most of the proxy's throughput) and X25519 (what clients send a key share
 * for first: no HelloRetryRequest round trip); the rest of GnuTLS's defaults stay available. */
#define PRIO_PREFER "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:" \
	"+GROUP-FFDHE2048:+GROUP-FFDHE3072:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"+AES-128-CCM:+AES-256-CCM:+AES-128-CBC:+AES-256-CBC"
/* The guest link: anything a guest tool speaks, including SHA-1 signatures (busybox wget). */
#define PRIO_GUEST "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" PRIO_PREFER \
	":+SIGN-RSA-SHA1:+SIGN-ECDSA-SHA1:%SERVER_PRECEDENCE"
/* The upstream link: GnuTLS's defaults (no SHA-1 signatures), TLS 1.2 and 1.3. */
#define PRIO_UPSTREAM "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" PRIO_PREFER

struct leaf {
	char name[256];
	gnutls_certificate_credentials_t cred;
	time_t made;
};

struct resume {
	char host[256];
	uint16_t port;
	gnutls_datum_t data;
};

struct tls_ctx {
	gnutls_x509_crt_t ca;
	gnutls_x509_privkey_t ca_key, leaf_key;
	gnutls_priority_t prio_guest, prio_up;
	gnutls_certificate_credentials_t up_cred;
	gnutls_datum_t ticket_key;
	struct leaf leaves[TLS_LEAVES];
	unsigned n_leaves, next_leaf, minted;
	struct resume resume[TLS_RESUME];
	unsigned next_resume;
};

static int gerr(struct ml_err *e, int r, const char *what)
{
	return ml_err_set(e, -EPROTO, "TLS set-up: %s: %s", what, gnutls_strerror(r));
}

int tls_ctx_new(const char *ca_pem, const char *extra_ca_file, struct tls_ctx **out, struct ml_err *e)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return ml_err_set(e, -ENOMEM, "out of memory");
	*out = t;
	if ((r = ca_parse(ca_pem, &t->ca, &t->ca_key)) < 0)
		return gerr(e, r, "the CA certificate and key");
	if ((r = ca_key_new(&t->leaf_key)) < 0)
		return gerr(e, r, "the leaf key");
	if ((r = gnutls_priority_init(&t->prio_guest, PRIO_GUEST, NULL)) < 0 ||
	    (r = gnutls_priority_init(&t->prio_up, PRIO_UPSTREAM, NULL)) < 0)
		return gerr(e, r, "priorities");
	if ((r = gnutls_certificate_allocate_credentials(&t->up_cred)) < 0)
		return gerr(e, r, "credentials");
	if ((r = gnutls_certificate_set_x509_system_trust(t->up_cred)) < 0)
		ml_warn("mitm: the system trust store: %s (upstreams verify against $SSL_CERT_FILE only)",
			gnutls_strerror(r));
	if (extra_ca_file && *extra_ca_file &&
	    (r = gnutls_certificate_set_x509_trust_file(t->up_cred, extra_ca_file, GNUTLS_X509_FMT_PEM)) < 0)
		ml_warn("mitm: SSL_CERT_FILE %s: %s", extra_ca_file, gnutls_strerror(r));
	if ((r = gnutls_session_ticket_key_generate(&t->ticket_key)) < 0)
		return gerr(e, r, "the session ticket key");
	return 0;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < t->n_leaves; i++)
		gnutls_certificate_free_credentials(t->leaves[i].cred);
	for (unsigned i = 0; i < TLS_RESUME; i++)
		gnutls_free(t->resume[i].data.data);
	if (t->up_cred)
		gnutls_certificate_free_credentials(t->up_cred);
	if (t->prio_guest)
		gnutls_priority_deinit(t->prio_guest);
	if (t->prio_up)
		gnutls_priority_deinit(t->prio_up);
	if (t->ticket_key.data) {
		explicit_bzero(t->ticket_key.data, t->ticket_key.size);
		gnutls_free(t->ticket_key.data);
	}
	if (t->leaf_key)
		gnutls_x509_privkey_deinit(t->leaf_key);
	if (t->ca_key)
		gnutls_x509_privkey_deinit(t->ca_key);
	if (t->ca)
		gnutls_x509_crt_deinit(t->ca);
	free(t);
}

unsigned tls_leaves_minted(const struct tls_ctx *t)
{
	return t->minted;
}

/* The credentials for name (a host name or a dotted IPv4), minted on first use. */
static gnutls_certificate_credentials_t leaf_for(struct tls_ctx *t, const char *name)
{
	time_t now = time(NULL);
	struct in_addr ip;
	bool is_ip = inet_pton(AF_INET, name, &ip) == 1;
	gnutls_x509_crt_t chain[2] = { NULL, t->ca };
	struct leaf *l;
	int r;

	for (unsigned i = 0; i < t->n_leaves; i++)
		if (!strcmp(t->leaves[i].name, name) && now - t->leaves[i].made < TLS_LEAF_REMINT_S)
			return t->leaves[i].cred;
	if ((r = ca_mint(t->ca, t->ca_key, t->leaf_key, name, is_ip ? &ip : NULL, now, &chain[0])) < 0) {
		ml_warn("mitm: minting a certificate for %s: %s", name, gnutls_strerror(r));
		return NULL;
	}
	l = &t->leaves[t->next_leaf];
	if (t->next_leaf < t->n_leaves)
		gnutls_certificate_free_credentials(l->cred);   /* the oldest gives way */
	else
		t->n_leaves++;
	t->next_leaf = (t->next_leaf + 1) % TLS_LEAVES;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->made = now;
	l->cred = NULL;
	if ((r = gnutls_certificate_allocate_credentials(&l->cred)) >= 0)
		r = gnutls_certificate_set_x509_key(l->cred, chain, 2, t->leaf_key);
	gnutls_x509_crt_deinit(chain[0]);
	if (r < 0) {
		ml_warn("mitm: certificate for %s: %s", name, gnutls_strerror(r));
		l->name[0] = '\0';
		return NULL;
	}
	t->minted++;
	return l->cred;
}

/* ---- transport: our buffers and fds, never a signal, never a block ---- */
/* GnuTLS asks for a record's header, then its body: two reads per record. One recv of up to
 * READ_AHEAD bytes serves both, and the records after them. */
#define READ_AHEAD (64u * 1024u)

static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t n)
{
	struct ep *e = p;
	ssize_t r;

	if (!e->pre.len) {
		uint8_t *to;

		/* the last read came back short: the socket is empty until poll says otherwise */
		if (!e->rd_ready) {
			gnutls_transport_set_errno(e->tls, EAGAIN);
			return -1;
		}
		if (!(to = iob_space(&e->pre, READ_AHEAD))) {
			gnutls_transport_set_errno(e->tls, ENOMEM);
			return -1;
		}
		do
			r = recv(*e->fdp, to, READ_AHEAD, MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			iob_free(&e->pre);
			if (r < 0)
				gnutls_transport_set_errno(e->tls, errno == EWOULDBLOCK ? EAGAIN : errno);
			return r;
		}
		e->pre.len = (size_t)r;
		if ((size_t)r < READ_AHEAD)
			e->rd_ready = false;
	}
	size_t k = e->pre.len < n ? e->pre.len : n;

	memcpy(buf, e->pre.d + e->pre.off, k);
	iob_consume(&e->pre, k);
	return (ssize_t)k;
}

static ssize_t push(gnutls_transport_ptr_t p, const giovec_t *iov, int n)
{
	struct ep *e = p;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
	ssize_t r;

	/* a batch being made (ep.c write_tls), or records already waiting: keep the order */
	if (e->batch || e->cout.len) {
		size_t total = 0;

		for (int i = 0; i < n; i++) {
			if (iob_put(&e->cout, iov[i].iov_base, iov[i].iov_len) < 0) {
				gnutls_transport_set_errno(e->tls, ENOMEM);
				return -1;
			}
			total += iov[i].iov_len;
		}
		return (ssize_t)total;
	}

	do
		r = sendmsg(*e->fdp, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		gnutls_transport_set_errno(e->tls, errno == EWOULDBLOCK ? EAGAIN : errno);
	return r;
}

static void set_transport(struct ep *e)
{
	gnutls_transport_set_ptr(e->tls, e);
	gnutls_transport_set_pull_function(e->tls, pull);
	gnutls_transport_set_vec_push_function(e->tls, push);
}

static int set_alpn(gnutls_session_t s, bool h2, unsigned flags)
{
	gnutls_datum_t p[2] = { { (unsigned char *)"h2", 2 }, { (unsigned char *)"http/1.1", 8 } };

	return h2 ? gnutls_alpn_set_protocols(s, p, 2, flags)
		  : gnutls_alpn_set_protocols(s, p + 1, 1, flags);
}

void tls_rebind(struct ep *e)
{
	gnutls_transport_set_ptr(e->tls, e);
}

bool tls_alpn_is_h2(gnutls_session_t s)
{
	gnutls_datum_t p;

	return gnutls_alpn_get_selected_protocol(s, &p) == 0 && p.size == 2 && !memcmp(p.data, "h2", 2);
}

int tls_server_start(struct mitm *m, struct hx *hx, bool offer_h2)
{
	struct tls_ctx *t = m->icpt->tls;
	gnutls_certificate_credentials_t cred = leaf_for(t, hx->sni);
	gnutls_session_t s;
	int r;

	if (!cred)
		return -EPROTO;
	if ((r = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL)) < 0)
		return -ENOMEM;
	hx->g.tls = s;
	hx->g.hs_done = false;
	if ((r = gnutls_priority_set(s, t->prio_guest)) < 0 ||
	    (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0 ||
	    (r = gnutls_session_ticket_enable_server(s, &t->ticket_key)) < 0 ||
	    (r = set_alpn(s, offer_h2, GNUTLS_ALPN_SERVER_PRECEDENCE)) < 0)
		return -EPROTO;
	set_transport(&hx->g);
	return 0;
}

int tls_server_step(struct hx *hx)
{
	int r = gnutls_handshake(hx->g.tls);

	if (r == 0) {
		hx->g.hs_done = true;
		hx->g.rd_ready = true;   /* a request may have come with the client's Finished */
		return 1;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r))
		return 0;
	ml_debug("mitm: TLS handshake with the guest (%s): %s", hx->sni, gnutls_strerror(r));
	return -1;
}

static void remember_session(struct tls_ctx *t, struct hx *hx);

static struct resume *resume_slot(struct tls_ctx *t, const char *host, uint16_t port)
{
	for (unsigned i = 0; i < TLS_RESUME; i++)
		if (t->resume[i].data.data && t->resume[i].port == port && !strcmp(t->resume[i].host, host))
			return &t->resume[i];
	return NULL;
}

int tls_client_start(struct mitm *m, struct hx *hx)
{
	struct tls_ctx *t = m->icpt->tls;
	const char *name = hx->upstream_sni[0] ? hx->upstream_sni : hx->tgt.host;
	struct in_addr ip;
	struct resume *res;
	gnutls_session_t s;
	int r;

	if ((r = gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL)) < 0)
		return -ENOMEM;
	hx->u.tls = s;
	hx->u.hs_done = false;
	if ((r = gnutls_priority_set(s, t->prio_up)) < 0 ||
	    (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->up_cred)) < 0 ||
	    (r = set_alpn(s, hx->want_h2_up, 0)) < 0)
		return -EPROTO;
	hx->u_offered_h2 = hx->want_h2_up;
	/* SNI is for names only; the certificate is checked against the name or the address */
	if (inet_pton(AF_INET, name, &ip) != 1 &&
	    (r = gnutls_server_name_set(s, GNUTLS_NAME_DNS, name, strlen(name))) < 0)
		return -EPROTO;
	gnutls_session_set_verify_cert(s, name, 0);
	if ((res = resume_slot(t, hx->tgt.host, hx->tgt.port)))
		(void)gnutls_session_set_data(s, res->data.data, res->data.size);   /* a full handshake if refused */
	set_transport(&hx->u);
	return 0;
}

/* After the first exchange on a fresh upstream session: TLS 1.3 hands out its ticket after
 * the handshake, so only now is there something to resume with. */
void tls_client_remember(struct mitm *m, struct hx *hx)
{
	if (hx->u.tls && hx->u.hs_done && !hx->u_remembered && !gnutls_session_is_resumed(hx->u.tls))
		remember_session(m->icpt->tls, hx);
	hx->u_remembered = true;
}

static void remember_session(struct tls_ctx *t, struct hx *hx)
{
	struct resume *r = resume_slot(t, hx->tgt.host, hx->tgt.port);

	if (!r) {
		r = &t->resume[t->next_resume];
		t->next_resume = (t->next_resume + 1) % TLS_RESUME;
	}
	gnutls_free(r->data.data);
	r->data = (gnutls_datum_t){ 0 };
	snprintf(r->host, sizeof(r->host), "%s", hx->tgt.host);
	r->port = hx->tgt.port;
	if (gnutls_session_get_data2(hx->u.tls, &r->data) < 0)
		r->data = (gnutls_datum_t){ 0 };
}

static void verify_reason(struct hx *hx)
{
	unsigned status = gnutls_session_get_verify_cert_status(hx->u.tls);
	gnutls_datum_t out = { 0 };

	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0 || !out.data) {
		snprintf(hx->up_err, sizeof(hx->up_err), "upstream certificate verification failed");
		return;
	}
	/* one line: GnuTLS's text without "The certificate is NOT trusted." padding */
	snprintf(hx->up_err, sizeof(hx->up_err), "upstream certificate verification failed: %s", out.data);
	for (char *c = hx->up_err; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	gnutls_free(out.data);
}

int tls_client_step(struct mitm *m, struct hx *hx)
{
	int r = gnutls_handshake(hx->u.tls);

	if (r == 0) {
		hx->u.hs_done = true;
		hx->u.rd_ready = true;
		m->st.tls_upstream_handshakes++;
		m->st.tls_upstream_resumed += gnutls_session_is_resumed(hx->u.tls) != 0;
		return 1;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r))
		return 0;
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
		verify_reason(hx);
	else
		snprintf(hx->up_err, sizeof(hx->up_err), "upstream TLS handshake failed: %s", gnutls_strerror(r));
	m->st.tls_upstream_failed++;
	return -1;
}
