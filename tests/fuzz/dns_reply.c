/* tests/fuzz/dns_reply.c - hostile upstream DNS replies through dnswire_parse_answer(), the
 * reader slirpnet and mitm use to learn which addresses a name was given. The input is the reply itself, in
 * an exact-size heap copy so ASan sees any read past it. Beyond crashes and sanitizer reports,
 * the contract is checked: an accepted reply reports a non-empty lowercase host name, at most
 * DNSWIRE_ADDRS_MAX distinct addresses, and a TTL of zero when it reports none. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnswire/dnswire.h"

static void check(const struct dnswire_answer *a)
{
	size_t len = strnlen(a->name, sizeof(a->name));

	if (len == sizeof(a->name) || a->n > DNSWIRE_ADDRS_MAX || (!a->n && a->ttl_s))
		abort();
	if (!a->n)
		return;
	if (!len || a->name[0] == '.' || a->name[len - 1] == '.' || strstr(a->name, ".."))
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = a->name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			abort();
	}
	for (size_t i = 0; i < a->n; i++)
		for (size_t j = i + 1; j < a->n; j++)
			if (a->addrs[i].s_addr == a->addrs[j].s_addr)
				abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *msg = malloc(size ? size : 1);
	struct dnswire_answer a;

	if (!msg)
		return 0;
	memcpy(msg, data, size);
	if (dnswire_parse_answer(msg, size, &a) == 0)
		check(&a);
	else if (a.n)
		abort(); /* a refused reply must report nothing */
	free(msg);
	return 0;
}
