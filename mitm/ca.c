/* mitm/ca.c - the per-user CA and the leaf certificates minted from it (not built yet). */
#include <errno.h>

#include "mitm/mitm.h"

int mitm_ca_load(const char *dir, char **pem, char **cert_pem, struct ml_err *e)
{
	(void)dir;
	*pem = *cert_pem = NULL;
	return ml_err_set(e, -ENOTSUP, "TLS interception is not built yet");
}
