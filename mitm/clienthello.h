/* mitm/clienthello.h - internal to mitm/: what the TLS proxy reads from a guest's ClientHello
 * before any TLS library sees it: the server name (SNI) and the ALPN protocols offered. */
#ifndef ML_MITM_CLIENTHELLO_H
#define ML_MITM_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CH_MAX_BYTES (64u * 1024u)   /* records holding a ClientHello: more is not a ClientHello */

enum ch_result { CH_MORE, CH_OK, CH_BAD };

struct clienthello {
	char sni[256];       /* the host_name entry, as sent ("" if none) */
	bool alpn;           /* an ALPN extension was present */
	bool alpn_h2, alpn_http11;
};

/* Reads the TLS records at the start of p (a handshake message may span several).
 * CH_MORE: not all there yet; CH_BAD: not a TLS ClientHello, or a malformed one, or an SNI
 * that is not a plausible host name (control bytes, over 255 bytes). */
enum ch_result clienthello_parse(const uint8_t *p, size_t n, struct clienthello *ch);

#endif
