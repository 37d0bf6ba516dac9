/* mitm/tls.c - TLS for the intercepting proxy (not built yet: TCP/443 is relayed). */
#include <errno.h>

#include "mitm/proxy.h"
#include "mitm/tls.h"

int tls_ctx_new(const char *ca_pem, struct tls_ctx **out, struct ml_err *e)
{
	(void)ca_pem;
	(void)e;
	*out = NULL;
	return 0;
}

void tls_ctx_free(struct tls_ctx *t)
{
	(void)t;
}

int tls_client_start(struct mitm *m, struct hx *hx)
{
	(void)m;
	(void)hx;
	return -ENOTSUP;
}

int tls_client_step(struct mitm *m, struct hx *hx)
{
	(void)m;
	(void)hx;
	return -1;
}

int tlsflow_step(struct mitm *m, struct hx *hx)
{
	(void)m;
	(void)hx;
	return -1;
}

void tlsflow_resolved(struct mitm *m, struct hx *hx, struct job *j)
{
	(void)m;
	(void)hx;
	(void)j;
}

void tlsflow_release(struct hx *hx)
{
	(void)hx;
}
