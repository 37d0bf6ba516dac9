/* mitm/tls.h - internal to mitm/: TLS for the intercepting proxy (GnuTLS). */
#ifndef ML_MITM_TLS_H
#define ML_MITM_TLS_H

#include "base/err.h"

struct mitm;
struct hx;
struct tls_ctx;

int tls_ctx_new(const char *ca_pem, struct tls_ctx **out, struct ml_err *e);
void tls_ctx_free(struct tls_ctx *t);
/* The upstream's TLS session on hx->u (connected): SNI, ALPN, verification. -errno. */
int tls_client_start(struct mitm *m, struct hx *hx);
/* Drives the upstream handshake: 1 done and verified, 0 again, -1 failed (hx->up_err says why). */
int tls_client_step(struct mitm *m, struct hx *hx);

#endif
