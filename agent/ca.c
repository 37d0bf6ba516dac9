/* agent/ca.c - the interception CA in the guest (CONFIG tag 10): the file every exec's
 * SSL_CERT_FILE / REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE / NODE_EXTRA_CA_CERTS point at, and a
 * copy appended to the image's system trust bundles, so tools that ignore those variables (git
 * built with GnuTLS, Debian's curl, anything reading the distribution bundle) trust it too.
 * Runs before any guest process exists; a bundle is only appended to if it resolves to a
 * regular file (an image's symlink must not steer PID 1's write anywhere else). */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"

#define CA_FILE "/etc/ssl/certs/matchlock-ca.crt"
#define BUNDLE_MAX (32 << 20)

/* Debian/Ubuntu/Alpine, Alpine's link, Fedora/RHEL, openSUSE. */
static const char *const bundles[] = {
	"/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem", "/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
};

/* Whether the file already holds the CA (an image built from a previous run's layer). */
static bool holds(int fd, off_t size, const char *pem)
{
	_cleanup_free_ char *buf = malloc((size_t)size + 1);
	ssize_t n;

	if (!buf || (n = pread(fd, buf, (size_t)size, 0)) < 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, pem) != NULL;
}

static void append_to(const char *real, const char *pem)
{
	_cleanup_close_ int fd = open(real, O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char last = '\n';
	int r;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > BUNDLE_MAX)
		return;
	if (holds(fd, st.st_size, pem))
		return;
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	if ((last != '\n' && (r = write_all(fd, "\n", 1)) < 0) || (r = write_all(fd, pem, strlen(pem))) < 0)
		ml_warn("adding the interception CA to %s: %s", real, strerror(-r));
}

int ca_install(const char *pem, struct ml_err *e)
{
	char seen[sizeof(bundles) / sizeof(*bundles)][PATH_MAX];
	size_t n_seen = 0;
	int r;

	if ((r = mkdir_p("/etc/ssl/certs", 0755)) < 0)
		return ml_err_set(e, r, "create /etc/ssl/certs: %s", strerror(-r));
	if ((r = replace_file(CA_FILE, pem, 0644, e)) < 0)
		return r;
	for (size_t i = 0; i < sizeof(bundles) / sizeof(*bundles); i++) {
		char real[PATH_MAX];
		bool dup = false;

		if (!realpath(bundles[i], real))
			continue;   /* this image has no such bundle */
		for (size_t j = 0; j < n_seen; j++)
			dup |= !strcmp(seen[j], real);
		if (dup)
			continue;   /* another name of a bundle already done (Alpine's cert.pem) */
		strcpy(seen[n_seen++], real);
		append_to(real, pem);
	}
	return 0;
}
