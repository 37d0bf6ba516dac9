/* mitm/secrets.c - secrets that never enter the VM.
 *
 * The guest's environment holds a placeholder (SANDBOX_SECRET_<32 hex>); the real value is
 * only ever written by this file, into a request to a host the secret is for: in header
 * values (also inside Basic credentials, which are base64: decoded, substituted, re-encoded,
 * so `git clone https://x:$TOKEN@host/` works) and in the raw query string. A placeholder of
 * a secret that is NOT for the request's host, in any header value or anywhere in the target,
 * blocks the request before anything is changed or sent: a guest cannot steer a secret to a
 * host of its choosing. Bodies are never touched (the protocol does not substitute there).
 * Values are checked at set-up: a CR, LF or NUL in one could split a header.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "base/b64.h"
#include "base/cleanup.h"
#include "mitm/intercept.h"

static void secret_clear(struct secret *s)
{
	free(s->name);
	if (s->value)
		explicit_bzero(s->value, s->vlen);
	free(s->value);
	free(s->ph);
	for (size_t i = 0; i < s->n_hosts; i++)
		free(s->hosts[i]);
	free(s->hosts);
}

void secrets_free(struct secrets *s)
{
	for (size_t i = 0; i < s->n; i++)
		secret_clear(&s->v[i]);
	free(s->v);
	*s = (struct secrets){ 0 };
}

static int secret_copy(struct secret *d, const struct mitm_secret *in, struct ml_err *e)
{
	if (!in->name || !*in->name)
		return ml_err_set(e, -EINVAL, "secret name cannot be empty");
	if (!in->value || !hdr_value_ok(in->value, strlen(in->value)))
		return ml_err_set(e, -EINVAL, "secret %s: its value holds a line break or NUL byte, "
				  "which cannot go into an HTTP header", in->name);
	if (!in->placeholder || strlen(in->placeholder) < 8 ||
	    !hdr_value_ok(in->placeholder, strlen(in->placeholder)))
		return ml_err_set(e, -EINVAL, "secret %s: bad placeholder", in->name);
	d->name = strdup(in->name);
	d->value = strdup(in->value);
	d->ph = strdup(in->placeholder);
	d->hosts = calloc(in->n_hosts + 1, sizeof(*d->hosts));
	if (!d->name || !d->value || !d->ph || !d->hosts)
		return ml_err_set(e, -ENOMEM, "out of memory");
	d->vlen = strlen(d->value);
	d->phlen = strlen(d->ph);
	for (size_t i = 0; i < in->n_hosts; i++) {
		if (!(d->hosts[i] = strdup(in->hosts[i])))
			return ml_err_set(e, -ENOMEM, "out of memory");
		d->n_hosts = i + 1;
	}
	return 0;
}

int secrets_init(struct secrets *s, const struct mitm_secret *in, size_t n, struct ml_err *e)
{
	*s = (struct secrets){ 0 };
	if (!n)
		return 0;
	s->v = calloc(n, sizeof(*s->v));
	if (!s->v)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		int r = secret_copy(&s->v[i], &in[i], e);

		s->n = i + 1;
		if (r < 0) {
			secrets_free(s);
			return r;
		}
	}
	return 0;
}

bool secret_for_host(const struct secret *s, const char *host)
{
	if (!s->n_hosts)
		return true;
	for (size_t i = 0; i < s->n_hosts; i++)
		if (mitm_host_glob_match(s->hosts[i], host))
			return true;
	return false;
}

/* ---- base64 (Basic credentials) ---- */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

/* Strict decode (padding optional); NULL if s is not base64. */
static char *b64_decode(const char *s, size_t n, size_t *out_len)
{
	char *out;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1 || !(out = malloc(n * 3 / 4 + 1)))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val(s[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* ---- check and substitute ---- */
/* -EACCES (and *bad) if p holds a placeholder of a secret not for host. */
static int check(const struct secrets *s, const char *host, const char *p, size_t n, const char **bad)
{
	for (size_t k = 0; k < s->n; k++)
		if (memmem(p, n, s->v[k].ph, s->v[k].phlen) && !secret_for_host(&s->v[k], host)) {
			*bad = s->v[k].name;
			return -EACCES;
		}
	return 0;
}

/* A byte that may stand in a request target as it is (else it is %-encoded). */
static bool target_safe(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"#<>\\^`{|}", c);
}

static int put_value(struct iob *o, const struct secret *sec, bool in_target)
{
	if (!in_target)
		return iob_put(o, sec->value, sec->vlen);
	for (size_t i = 0; i < sec->vlen; i++) {
		unsigned char c = (unsigned char)sec->value[i];
		int r = target_safe(c) ? iob_put(o, &c, 1) : iob_printf(o, "%%%02X", c);

		if (r < 0)
			return r;
	}
	return 0;
}

/* p with every placeholder of a secret for host replaced: a new string in *out (NULL: none
 * found, p stays as it is). */
static int substitute(const struct secrets *s, const char *host, const char *p, size_t n,
		      bool in_target, uint64_t *used, char **out, size_t *out_len)
{
	struct iob o = { 0 };
	size_t i = 0, copied = 0;

	*out = NULL;
	while (i < n) {
		const struct secret *hit = NULL;
		size_t k;

		for (k = 0; k < s->n; k++)
			if (n - i >= s->v[k].phlen && !memcmp(p + i, s->v[k].ph, s->v[k].phlen) &&
			    secret_for_host(&s->v[k], host)) {
				hit = &s->v[k];
				break;
			}
		if (!hit) {
			i++;
			continue;
		}
		if (iob_put(&o, p + copied, i - copied) < 0 || put_value(&o, hit, in_target) < 0) {
			iob_free(&o);
			return -ENOMEM;
		}
		if (k < 64)
			*used |= 1ull << k;
		i += hit->phlen;
		copied = i;
	}
	if (!copied)
		return 0;
	if (iob_put(&o, p + copied, n - copied) < 0 || iob_put(&o, "", 1) < 0) {
		iob_free(&o);
		return -ENOMEM;
	}
	*out_len = o.len - 1;
	*out = (char *)o.d;   /* off is 0: nothing was consumed */
	return 0;
}

static bool basic_creds(const struct hdrs *hd, const struct hdr *x, const char **tok, size_t *n)
{
	const char *v = hdr_value(hd, x);

	if ((strcasecmp(hdr_name(hd, x), "Authorization") &&
	     strcasecmp(hdr_name(hd, x), "Proxy-Authorization")) || strncasecmp(v, "Basic ", 6))
		return false;
	v += 6;
	while (*v == ' ')
		v++;
	*tok = v;
	*n = strcspn(v, " ");
	return *n > 0;
}

static int check_all(const struct secrets *s, const char *host, const struct hdrs *hd,
		     const char *target, const char **bad)
{
	for (uint32_t i = 0; i < hd->n; i++) {
		const struct hdr *x = &hd->v[i];
		const char *tok;
		size_t tn, dn;
		int r;

		if (x->dead)
			continue;
		if ((r = check(s, host, hdr_value(hd, x), x->vlen, bad)) < 0)
			return r;
		if (basic_creds(hd, x, &tok, &tn)) {
			_cleanup_free_ char *dec = b64_decode(tok, tn, &dn);

			if (dec && (r = check(s, host, dec, dn, bad)) < 0)
				return r;
		}
	}
	return check(s, host, target, strlen(target), bad);
}

static int apply_basic(const struct secrets *s, const char *host, struct hdrs *hd, uint32_t i,
		       uint64_t *used)
{
	const char *tok;
	size_t tn, dn, sn;
	_cleanup_free_ char *dec = NULL, *sub = NULL, *enc = NULL, *val = NULL;
	int r;

	if (!basic_creds(hd, &hd->v[i], &tok, &tn) || !(dec = b64_decode(tok, tn, &dn)))
		return 0;
	if ((r = substitute(s, host, dec, dn, false, used, &sub, &sn)) < 0 || !sub)
		return r;
	if (!(enc = ml_b64_encode(sub, sn)) || asprintf(&val, "Basic %s", enc) < 0) {
		val = NULL;
		return -ENOMEM;
	}
	explicit_bzero(sub, sn);
	return hdrs_replace_value(hd, i, val, strlen(val));
}

int secrets_apply(const struct secrets *s, const char *host, struct hdrs *hd, char **target,
		  uint64_t *used, const char **bad)
{
	char *q, *sub;
	size_t sn;
	int r;

	if (!s->n)
		return 0;
	if ((r = check_all(s, host, hd, *target, bad)) < 0)
		return r;
	for (uint32_t i = 0; i < hd->n; i++) {
		if (hd->v[i].dead)
			continue;
		if ((r = apply_basic(s, host, hd, i, used)) < 0)
			return r;
		if ((r = substitute(s, host, hdr_value(hd, &hd->v[i]), hd->v[i].vlen, false, used,
				    &sub, &sn)) < 0)
			return r;
		if (sub) {
			r = hdrs_replace_value(hd, i, sub, sn);
			explicit_bzero(sub, sn);
			free(sub);
			if (r < 0)
				return r;
		}
	}
	/* the query only: placeholders in the path stay as they are */
	if (!(q = strchr(*target, '?')))
		return 0;
	if ((r = substitute(s, host, q, strlen(q), true, used, &sub, &sn)) < 0 || !sub)
		return r;
	{
		size_t plen = (size_t)(q - *target);
		char *nt = malloc(plen + sn + 1);

		if (!nt) {
			free(sub);
			return -ENOMEM;
		}
		memcpy(nt, *target, plen);
		memcpy(nt + plen, sub, sn + 1);
		free(sub);
		free(*target);
		*target = nt;
	}
	return 0;
}

int mitm_placeholder_new(char out[MITM_PLACEHOLDER_LEN + 1])
{
	uint8_t rnd[16];
	size_t got = 0;

	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	memcpy(out, MITM_PLACEHOLDER_PREFIX, strlen(MITM_PLACEHOLDER_PREFIX));
	for (size_t i = 0; i < sizeof(rnd); i++)
		sprintf(out + strlen(MITM_PLACEHOLDER_PREFIX) + 2 * i, "%02x", rnd[i]);
	return 0;
}
