/* oci/digest.c - sha256 digests (gnutls) of blobs as they stream by. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/internal.h"

bool digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

struct sha256 {
	gnutls_hash_hd_t h;
};

struct sha256 *sha256_new(void)
{
	struct sha256 *s = calloc(1, sizeof(*s));
	if (s && gnutls_hash_init(&s->h, GNUTLS_DIG_SHA256) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

void sha256_update(struct sha256 *h, const void *p, size_t n)
{
	gnutls_hash(h->h, p, n);
}

void sha256_done(struct sha256 *h, char hex[65])
{
	unsigned char out[32];
	gnutls_hash_deinit(h->h, out);
	free(h);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", out[i]);
}

int sha256_fd(int fd, char hex[65], struct ml_err *e)
{
	struct sha256 *h = sha256_new();
	_cleanup_free_ char *buf = malloc(1 << 16);
	if (!h || !buf) {
		if (h)
			sha256_done(h, hex);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 16);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;
			sha256_done(h, hex);
			return ml_err_set(e, err, "read: %m");
		}
		if (n == 0)
			break;
		sha256_update(h, buf, (size_t)n);
	}
	sha256_done(h, hex);
	return 0;
}
