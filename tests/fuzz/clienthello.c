/* tests/fuzz/clienthello.c - hostile first bytes of a TCP/443 flow through clienthello_parse
 * (mitm/clienthello.c), which reads the SNI and ALPN before any TLS library does. The input is
 * the raw records, in an exact-size heap copy so ASan sees any read past them; every prefix is
 * tried too (the proxy parses as bytes trickle in). Checked beyond crashes: an accepted SNI is
 * NUL-terminated, at most 255 bytes, with no byte a host name cannot hold; a prefix never
 * yields a verdict that contradicts the whole input's (OK/BAD on a prefix means the same on
 * the whole). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mitm/clienthello.h"

static void check(const struct clienthello *ch)
{
	size_t n = strnlen(ch->sni, sizeof(ch->sni));

	if (n == sizeof(ch->sni))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)ch->sni[i] <= ' ' || (unsigned char)ch->sni[i] >= 0x7f)
			abort();
	if ((ch->alpn_h2 || ch->alpn_http11) && !ch->alpn)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	struct clienthello ch, whole;
	enum ch_result all;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	all = clienthello_parse(copy, size, &whole);
	if (all == CH_OK)
		check(&whole);
	for (size_t cut = size > 64 ? size - 64 : 0; cut < size; cut++) {
		uint8_t *pre = malloc(cut ? cut : 1);
		enum ch_result r;

		memcpy(pre, data, cut);
		r = clienthello_parse(pre, cut, &ch);
		free(pre);
		if (r != CH_MORE && r != all)
			abort();
		if (r == CH_OK && strcmp(ch.sni, whole.sni))
			abort();
	}
	free(copy);
	return 0;
}
