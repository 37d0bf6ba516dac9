/* mitm/ca.c - the per-user CA that signs what the TLS proxy shows the guest, and the leaf
 * certificates minted from it.
 *
 * The CA (ECDSA P-256, ten years) lives in one file, dir/ca.pem, certificate and key together,
 * mode 0600, so there is never a certificate without its key or the reverse. It is made once:
 * written to a temporary file, synced, then link()ed into place, which fails if another
 * process got there first - that file wins and is read back, so two first runs at once agree on
 * one CA. Leaves are ECDSA P-256 too, one key per proxy (generating a key per host buys
 * nothing: the CA is the trust anchor), valid from a week ago (a guest whose clock lags still
 * accepts them) for 30 days.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "mitm/tls.h"

#define CA_YEARS 10
#define LEAF_BACKDATE_S (7 * 86400)
#define LEAF_LIFETIME_S (30 * 86400)

static int gerr(struct ml_err *e, int r, const char *what)
{
	return ml_err_set(e, -EPROTO, "%s: %s", what, gnutls_strerror(r));
}

static int set_serial(gnutls_x509_crt_t crt)
{
	uint8_t s[16];

	if (getrandom(s, sizeof(s), 0) != (ssize_t)sizeof(s))
		return -EIO;
	s[0] &= 0x7f;   /* a positive INTEGER */
	s[0] |= 0x01;
	return gnutls_x509_crt_set_serial(crt, s, sizeof(s));
}

int ca_key_new(gnutls_x509_privkey_t *key)
{
	int r = gnutls_x509_privkey_init(key);

	if (r < 0)
		return r;
	r = gnutls_x509_privkey_generate2(*key, GNUTLS_PK_ECDSA,
					  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0);
	if (r < 0) {
		gnutls_x509_privkey_deinit(*key);
		*key = NULL;
	}
	return r;
}

static int make_ca(gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key, struct ml_err *e)
{
	char dn[300], host[HOST_NAME_MAX + 1] = "host";
	uint8_t kid[64];
	size_t kid_len = sizeof(kid);
	time_t now = time(NULL);
	const char *user = getenv("USER");
	const char *err = NULL;
	int r;

	char who[64];

	gethostname(host, sizeof(host) - 1);
	snprintf(who, sizeof(who), "%s@%s", user && *user ? user : "user", host);
	for (char *c = who; *c; c++)   /* nothing that means something in a DN string */
		if (!isalnum((unsigned char)*c) && !strchr("@.-_", *c))
			*c = '_';
	snprintf(dn, sizeof(dn), "CN=matchlock CA (%s),O=matchlock", who);
	if ((r = ca_key_new(key)) < 0)
		return gerr(e, r, "generating the CA key");
	if ((r = gnutls_x509_crt_init(crt)) < 0)
		return gerr(e, r, "the CA certificate");
	if ((r = gnutls_x509_crt_set_version(*crt, 3)) < 0 || (r = set_serial(*crt)) < 0 ||
	    (r = gnutls_x509_crt_set_dn(*crt, dn, &err)) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(*crt, now - 86400)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(*crt, now + (time_t)CA_YEARS * 365 * 86400)) < 0 ||
	    (r = gnutls_x509_crt_set_key(*crt, *key)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(*crt, 1, 0)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(*crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN)) < 0 ||
	    (r = gnutls_x509_crt_get_key_id(*crt, 0, kid, &kid_len)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_key_id(*crt, kid, kid_len)) < 0 ||
	    (r = gnutls_x509_crt_sign2(*crt, *crt, *key, GNUTLS_DIG_SHA256, 0)) < 0)
		return gerr(e, r, "making the CA certificate");
	return 0;
}

static int export_pem(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, char **cert, char **both)
{
	gnutls_datum_t c = { 0 }, k = { 0 };
	int r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c);

	if (r >= 0 && key)
		r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &k);
	if (r >= 0) {
		*cert = strndup((char *)c.data, c.size);
		if (both && asprintf(both, "%.*s%.*s", (int)c.size, c.data, (int)k.size, k.data) < 0)
			*both = NULL;
		if (!*cert || (both && !*both))
			r = GNUTLS_E_MEMORY_ERROR;
	}
	if (k.data) {
		explicit_bzero(k.data, k.size);
		gnutls_free(k.data);
	}
	gnutls_free(c.data);
	return r;
}

static int read_file(const char *path, char **out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size > 1 << 20 || !(buf = malloc((size_t)st.st_size + 1)))
		return -EFBIG;
	n = read(fd, buf, (size_t)st.st_size);
	if (n != st.st_size) {
		free(buf);
		return -EIO;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

int ca_parse(const char *pem, gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key)
{
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };
	int r = gnutls_x509_crt_init(crt);

	if (r < 0)
		return r;
	if ((r = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM)) < 0)
		return r;
	if (!key)
		return 0;
	if ((r = gnutls_x509_privkey_init(key)) < 0)
		return r;
	return gnutls_x509_privkey_import2(*key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
}

static int load(const char *path, char **pem, char **cert_pem, struct ml_err *e)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	int r = read_file(path, pem);

	if (r < 0)
		return r;
	r = ca_parse(*pem, &crt, &key);
	if (r >= 0)
		r = export_pem(crt, NULL, cert_pem, NULL);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	if (r < 0) {
		free(*pem);
		*pem = NULL;
		return ml_err_set(e, -EINVAL, "%s is not a CA certificate and key (%s): move it away to make a new CA",
				  path, gnutls_strerror(r));
	}
	return 0;
}

static int write_new(const char *dir, const char *path, const char *pem, struct ml_err *e)
{
	char tmp[PATH_MAX];
	_cleanup_close_ int fd = -1;
	size_t len = strlen(pem);
	int r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s/.ca.pem.%d.tmp", dir, (int)getpid()) >= (int)sizeof(tmp))
		return ml_err_set(e, -ENAMETOOLONG, "CA path too long");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return ml_err_set(e, -errno, "creating %s: %s", tmp, strerror(errno));
	if (write(fd, pem, len) != (ssize_t)len || fsync(fd) < 0)
		r = ml_err_set(e, -errno ? -errno : -EIO, "writing %s: %s", tmp, strerror(errno ? errno : EIO));
	/* link() refuses to replace: a CA another process made meanwhile stays, and we read it */
	if (r == 0 && link(tmp, path) < 0 && errno != EEXIST)
		r = ml_err_set(e, -errno, "installing %s: %s", path, strerror(errno));
	unlink(tmp);
	if (r == 0) {
		_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0)
			(void)fsync(dfd);   /* the new name survives a crash; best effort */
	}
	return r;
}

int mitm_ca_load(const char *dir, char **pem, char **cert_pem, struct ml_err *e)
{
	char path[PATH_MAX];
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	_cleanup_free_ char *fresh = NULL, *fresh_cert = NULL;
	int r;

	*pem = *cert_pem = NULL;
	if (snprintf(path, sizeof(path), "%s/ca.pem", dir) >= (int)sizeof(path))
		return ml_err_set(e, -ENAMETOOLONG, "CA path too long");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ml_err_set(e, -errno, "creating %s: %s", dir, strerror(errno));
	r = load(path, pem, cert_pem, e);
	if (r != -ENOENT)
		return r;
	r = make_ca(&crt, &key, e);
	if (r == 0 && export_pem(crt, key, &fresh_cert, &fresh) < 0)
		r = ml_err_set(e, -ENOMEM, "exporting the CA");
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	if (r == 0)
		r = write_new(dir, path, fresh, e);
	if (fresh)
		explicit_bzero(fresh, strlen(fresh));
	return r < 0 ? r : load(path, pem, cert_pem, e);
}

int ca_mint(gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key, gnutls_x509_privkey_t leaf_key,
	    const char *name, const struct in_addr *ip, time_t now, gnutls_x509_crt_t *out)
{
	uint8_t kid[64];
	size_t kid_len = sizeof(kid);
	gnutls_x509_crt_t crt;
	int r = gnutls_x509_crt_init(&crt);

	if (r < 0)
		return r;
	if ((r = gnutls_x509_crt_set_version(crt, 3)) < 0 || (r = set_serial(crt)) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name, (unsigned)strlen(name))) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(crt, now - LEAF_BACKDATE_S)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt, now + LEAF_LIFETIME_S)) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, leaf_key)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (r = gnutls_x509_crt_get_subject_key_id(ca, kid, &kid_len, NULL)) < 0 ||
	    (r = gnutls_x509_crt_set_authority_key_id(crt, kid, kid_len)) < 0)
		goto fail;
	if (ip)
		r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_SET);
	else
		r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
							 (unsigned)strlen(name), GNUTLS_FSAN_SET);
	if (r < 0 || (r = gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256, 0)) < 0)
		goto fail;
	*out = crt;
	return 0;
fail:
	gnutls_x509_crt_deinit(crt);
	return r;
}
