/* tests/fuzz/manifest.c - registry responses are hostile input: arbitrary bytes as a manifest,
 * an index (platform selection), a docker config.json and a WWW-Authenticate header. Must
 * never crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct ml_err e = {0};
	bool index = false;
	if (manifest_is_index(buf, size, "application/vnd.oci.image.index.v1+json", &index, &e) == 0) {
		struct manifest m;
		char d[72];
		if (index)
			index_pick(buf, size, d, &e);
		else if (manifest_parse(buf, size, &m, &e) == 0)
			manifest_clear(&m);
	}
	char *b = NULL;
	if (docker_auth_find(buf, size, "localhost:5000", &b, &e) == 0)
		free(b);
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	struct www_auth a;
	if (www_auth_parse(s, &a, &e) == 0)
		www_auth_clear(&a);
	registry_plain_http_ok(s, s);
	struct oci_ref r;
	if (oci_ref_parse(s, &r, &e) == 0)
		oci_ref_clear(&r);
	free(s);
	return 0;
}
