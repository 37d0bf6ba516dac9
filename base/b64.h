/* base/b64.h - standard base64 (RFC 4648, with padding) for the host side: the protocol's
 * stdout/stderr and file contents, Basic credentials for registries and for secrets. The
 * decoders stay with their callers: each input has its own rules (the protocol tolerates line
 * breaks, Basic credentials may omit the padding). */
#ifndef ML_BASE_B64_H
#define ML_BASE_B64_H

#include <stddef.h>

/* A malloc'd, NUL-terminated encoding of len bytes of data; NULL when out of memory. */
char *ml_b64_encode(const void *data, size_t len);

#endif
