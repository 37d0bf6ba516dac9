/* tests/fuzz/secrets.c - hostile request heads through the secret substitution
 * (secrets_apply, mitm/secrets.c). Two secrets: one for *.api.test, one for any host. The input
 * is "host\nTARGET\nname: value\n..." where the bytes "@1" and "@2" stand for the secrets'
 * placeholders (so the fuzzer finds them) and base64 in Basic credentials is decoded. Checked
 * beyond crashes: a request refused (-EACCES) is left exactly as it came; one accepted holds no
 * placeholder of a secret that is for its host in any header value or in the query, no more
 * copies of the value of a secret that is not for its host than the guest itself wrote, and no
 * header value holds CR, LF or NUL. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "mitm/intercept.h"

#define PH1 "SANDBOX_SECRET_00000000000000000000000000000001"
#define PH2 "SANDBOX_SECRET_00000000000000000000000000000002"

static struct secrets S;

static void setup(void)
{
	static char *h1[] = { "*.api.test" };
	struct mitm_secret in[] = {
		{ .name = "ONE", .value = "value-one", .placeholder = PH1, .hosts = h1, .n_hosts = 1 },
		{ .name = "TWO", .value = "v2&x=y z", .placeholder = PH2 },
	};
	struct ml_err e;

	if (secrets_init(&S, in, 2, &e) < 0)
		abort();
}

/* the input with @1/@2 replaced by the placeholders */
static char *expand(const uint8_t *d, size_t n)
{
	struct iob o = { 0 };

	for (size_t i = 0; i < n; i++) {
		if (d[i] == '@' && i + 1 < n && (d[i + 1] == '1' || d[i + 1] == '2')) {
			iob_put(&o, d[i + 1] == '1' ? PH1 : PH2, strlen(PH1));
			i++;
		} else {
			iob_put(&o, &d[i], 1);
		}
	}
	iob_put(&o, "", 1);
	return (char *)o.d;
}

static size_t count(const char *v, size_t n, const char *what)
{
	size_t c = 0, wl = strlen(what);
	const char *p = v;

	while ((p = memmem(p, n - (size_t)(p - v), what, wl))) {
		c++;
		p += wl;
	}
	return c;
}

static size_t count_all(const struct hdrs *hd, const char *target)
{
	size_t c = count(target, strlen(target), "value-one");

	for (uint32_t i = 0; i < hd->n; i++)
		if (!hd->v[i].dead)
			c += count(hdr_value(hd, &hd->v[i]), hd->v[i].vlen, "value-one");
	return c;
}

static void check_value(const char *v, size_t n, const char *host, bool query)
{
	if (!query && !hdr_value_ok(v, n))
		abort();
	if (mitm_host_glob_match("*.api.test", host) && memmem(v, n, PH1, strlen(PH1)))
		abort();
	if (memmem(v, n, PH2, strlen(PH2)))
		abort();   /* TWO is for every host: always substituted */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *line, *save = NULL, *host, *target;
	struct hdrs hd = { 0 };
	uint64_t used = 0;
	const char *bad = NULL;
	int r;

	if (!S.n)
		setup();
	if (!(text = expand(data, size)))
		return 0;
	host = strtok_r(text, "\n", &save);
	line = strtok_r(NULL, "\n", &save);
	if (!host || !line || !(target = strdup(line))) {
		free(text);
		return 0;
	}
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *colon = strchr(line, ':');

		if (colon && hdr_value_ok(colon + 1, strlen(colon + 1)))
			hdrs_add(&hd, line, (size_t)(colon - line), colon + 1, strlen(colon + 1));
	}
	char *before = strdup(target);
	uint32_t n_before = hd.n;
	size_t values_before = count_all(&hd, target);
	r = secrets_apply(&S, host, &hd, &target, &used, &bad);
	if (r == -EACCES) {
		if (strcmp(before, target) || hd.n != n_before || !bad)
			abort();
	} else if (r == 0) {
		const char *q = strchr(target, '?');

		for (uint32_t i = 0; i < hd.n; i++)
			if (!hd.v[i].dead)
				check_value(hdr_value(&hd, &hd.v[i]), hd.v[i].vlen, host, false);
		if (q)
			check_value(q, strlen(q), host, true);
		if (!mitm_host_glob_match("*.api.test", host) && count_all(&hd, target) > values_before)
			abort();
	}
	free(before);
	free(target);
	hdrs_free(&hd);
	free(text);
	return 0;
}
