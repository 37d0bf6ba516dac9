/* mitm/tls.h - internal to mitm/: TLS for the intercepting proxy (GnuTLS). ca.c makes and
 * reads the CA and mints leaves; tls.c holds one context per proxy (the CA, the leaf key and a
 * cache of leaves per name, priorities, the trust store for upstreams, resumption data) and
 * starts and drives sessions on a flow's two ends. */
#ifndef ML_MITM_TLS_H
#define ML_MITM_TLS_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <time.h>

#include "base/err.h"

struct mitm;
struct hx;
struct ep;
struct tls_ctx;

/* ca.c */
int ca_key_new(gnutls_x509_privkey_t *key);
/* Imports the certificate (and, if key, the key) from PEM text. GnuTLS error codes. */
int ca_parse(const char *pem, gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key);
/* A leaf for name (DNS SAN), or for ip (IP SAN) when ip is not NULL, signed by the CA. */
int ca_mint(gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key, gnutls_x509_privkey_t leaf_key,
	    const char *name, const struct in_addr *ip, time_t now, gnutls_x509_crt_t *out);

/* tls.c */
/* ca_pem: the CA's certificate and key; extra_ca_file: PEM CAs trusted for upstreams besides
 * the system store (NULL: none). */
int tls_ctx_new(const char *ca_pem, const char *extra_ca_file, struct tls_ctx **out, struct ml_err *e);
void tls_ctx_free(struct tls_ctx *t);
/* The guest's session on hx->g for the name in hx->sni (the ClientHello is in hx->g.pre). */
int tls_server_start(struct mitm *m, struct hx *hx, bool offer_h2);
/* 1 done, 0 again, -1 failed. */
int tls_server_step(struct hx *hx);
/* The upstream's session on hx->u (connected): SNI, ALPN, verification. -errno. */
int tls_client_start(struct mitm *m, struct hx *hx);
/* Drives the upstream handshake: 1 done and verified, 0 again, -1 failed (hx->up_err says why). */
int tls_client_step(struct mitm *m, struct hx *hx);
/* Keeps the upstream session for resumption (once, after its first exchange). */
void tls_client_remember(struct mitm *m, struct hx *hx);
/* The session of e now talks through e (it moved: the idle upstream pool). */
void tls_rebind(struct ep *e);
/* The ALPN protocol a finished session agreed on: true for "h2". */
bool tls_alpn_is_h2(gnutls_session_t s);
/* Leaves minted so far (for the unit tests and stats). */
unsigned tls_leaves_minted(const struct tls_ctx *t);

#endif
