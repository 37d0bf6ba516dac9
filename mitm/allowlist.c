/* mitm/allowlist.c - the allow-list's entries: checked one by one (the one validator the
 * CLI and the RPC server use), parsed into what they can match, and changed while the VM runs.
 *
 * A glob is only as strong as the part of it the guest cannot choose. Names reach the policy
 * through DNS, and whoever owns a domain answers for every name under it: "github.*" also
 * matches github.attacker.tld, "*github.com" matches evilgithub.com, and "api.*.example.com"
 * matches any depth under example.com because '*' matches dots. So a name glob must end in
 * at least two fixed labels after its last '*', and a bare '*' label may only come first.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/cleanup.h"
#include "mitm/internal.h"

#define ENTRY_TEXT_MAX 512

/* Copies s without surrounding whitespace into out (cap bytes); false if it does not fit. */
static bool trim_copy(const char *s, char *out, size_t cap)
{
	size_t len = strlen(s);

	s = ml_trim_span(s, &len);
	if (len >= cap)
		return false;
	memcpy(out, s, len);
	out[len] = '\0';
	return true;
}

static int bad(struct ml_err *e, const char *entry, const char *why)
{
	return ml_err_set(e, -EINVAL, "invalid allow-host \"%s\": %s", entry, why);
}

/* ":PORT" -> *port. */
static int parse_port(const char *entry, const char *p, uint16_t *port, struct ml_err *e)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(p, &end, 10);
	if (!isdigit((unsigned char)*p) || *end || errno || v < 1 || v > 65535)
		return bad(e, entry, "bad port (1-65535)");
	*port = (uint16_t)v;
	return 0;
}

static bool is_octet(const char *l, size_t len)
{
	unsigned v = 0;

	if (!len || len > 3)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)l[i]))
			return false;
		v = v * 10 + (unsigned)(l[i] - '0');
	}
	return v <= 255;
}

/* Every label is '*' or a decimal octet, at most four: the glob can only mean addresses. */
static bool is_addr_glob(const char *h)
{
	size_t labels = 0;

	for (const char *l = h;; labels++) {
		const char *dot = strchr(l, '.');
		size_t len = dot ? (size_t)(dot - l) : strlen(l);
		if (!(len == 1 && *l == '*') && !is_octet(l, len))
			return false;
		if (!dot)
			break;
		l = dot + 1;
	}
	return labels < 4;
}

/* Characters and label shape of a normalized host. */
static int check_labels(const char *entry, const char *h, struct ml_err *e)
{
	size_t label = 0;
	char why[64];

	for (const char *c = h;; c++) {
		if (*c == '.' || !*c) {
			if (!label)
				return bad(e, entry, "empty label");
			if (label > 63)
				return bad(e, entry, "label longer than 63 characters");
			if (!*c)
				return 0;
			label = 0;
			continue;
		}
		if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '-' && *c != '_' && *c != '*') {
			snprintf(why, sizeof(why), isprint((unsigned char)*c) ? "invalid character '%c'" :
				 "invalid character \\x%02x", (unsigned char)*c);
			return bad(e, entry, why);
		}
		label++;
	}
}

/* The rules for a name glob (a host with '*' that is not an address glob nor "*"). */
static int check_name_glob(const char *entry, const char *h, struct ml_err *e)
{
	const char *last_dot = strrchr(h, '.'), *star = strrchr(h, '*'), *dot;

	if (!last_dot || strchr(last_dot, '*'))
		return bad(e, entry, "a '*' in the last label lets the guest pick the top-level domain "
			   "(github.* matches github.attacker.tld): write the full domain");
	for (const char *l = strchr(h, '.'); l; l = strchr(l + 1, '.'))
		if (l[1] == '*' && (l[2] == '.' || !l[2]))
			return bad(e, entry, "a bare '*' label is allowed only first (*.example.com): "
				   "elsewhere it matches any number of labels");
	dot = strchr(star, '.');
	if (!dot || !strchr(dot + 1, '.'))
		return bad(e, entry, "keep at least two whole labels after the last '*' (*.example.com, "
			   "api-*.example.com): *github.com matches evilgithub.com, *.com every .com name");
	return 0;
}

/* Parses a trimmed, non-empty entry into a (glob and text still to be allocated: host gets
 * the normalized host). */
static int parse_entry(const char *entry, struct allow_entry *a, char host[NAME_MAX_LEN + 1], struct ml_err *e)
{
	const char *colon = strchr(entry, ':');
	size_t hlen = strlen(entry);
	struct in6_addr v6;
	struct in_addr v4;
	int r;

	*a = (struct allow_entry){ 0 };
	if (colon && strchr(colon + 1, ':')) {
		/* Several colons: an IPv6 literal, which can never match (the guest has no IPv6). */
		if (inet_pton(AF_INET6, entry, &v6) != 1)
			return bad(e, entry, "several ':' but not an IPv6 address");
		a->kind = ENTRY_NEVER;
		snprintf(host, NAME_MAX_LEN + 1, "%s", entry);
		return 0;
	}
	if (colon) {
		if ((r = parse_port(entry, colon + 1, &a->port, e)) < 0)
			return r;
		hlen = (size_t)(colon - entry);
	}
	if (hlen > NAME_MAX_LEN)
		return bad(e, entry, "too long");
	memcpy(host, entry, hlen);
	host[hlen] = '\0';
	if (!host_normalize(host, host, NAME_MAX_LEN + 1))
		return bad(e, entry, "empty host");
	if (strlen(host) > 253)
		return bad(e, entry, "too long");
	if ((r = check_labels(entry, host, e)) < 0)
		return r;
	if (inet_pton(AF_INET, host, &v4) == 1) {
		a->kind = ENTRY_IP;
		a->ip = ntohl(v4.s_addr);
	} else if (!strcmp(host, "*")) {
		a->kind = ENTRY_ANY;
	} else if (!strchr(host, '*')) {
		a->kind = ENTRY_NAME;
	} else if (is_addr_glob(host)) {
		a->kind = ENTRY_ADDR_GLOB;
	} else {
		if ((r = check_name_glob(entry, host, e)) < 0)
			return r;
		a->kind = ENTRY_NAME;
	}
	return 0;
}

int mitm_allow_host_check(const char *entry, struct ml_err *e)
{
	char t[ENTRY_TEXT_MAX], host[NAME_MAX_LEN + 1];
	struct allow_entry a;

	if (!trim_copy(entry, t, sizeof(t)))
		return ml_err_set(e, -EINVAL, "invalid allow-host: longer than %d characters", ENTRY_TEXT_MAX - 1);
	if (!*t)
		return bad(e, t, "empty host");
	return parse_entry(t, &a, host, e);
}

void allow_entries_free(struct allow_entry *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++) {
		free(a[i].text);
		free(a[i].glob);
	}
	free(a);
}

static bool has_text(const struct allow_entry *a, size_t n, const char *t)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(a[i].text, t))
			return true;
	return false;
}

int allow_parse(char *const *hosts, size_t n, struct allow_entry **out, size_t *n_out, struct ml_err *e)
{
	struct allow_entry *a = n ? calloc(n, sizeof(*a)) : NULL;
	char t[ENTRY_TEXT_MAX], host[NAME_MAX_LEN + 1];
	size_t k = 0;
	int r = 0;

	*out = NULL;
	*n_out = 0;
	if (n && !a)
		return ml_err_set(e, -ENOMEM, "allow-host: out of memory");
	for (size_t i = 0; i < n && r == 0; i++) {
		if (!trim_copy(hosts[i], t, sizeof(t)))
			r = ml_err_set(e, -EINVAL, "invalid allow-host: longer than %d characters", ENTRY_TEXT_MAX - 1);
		else if (!*t || has_text(a, k, t))
			continue;
		else if ((r = parse_entry(t, &a[k], host, e)) == 0) {
			a[k].text = strdup(t);
			a[k].glob = strdup(host);
			r = a[k].text && a[k].glob ? 0 : ml_err_set(e, -ENOMEM, "allow-host: out of memory");
			k++;  /* so allow_entries_free frees what was allocated */
		}
	}
	if (r < 0) {
		allow_entries_free(a, k);
		return r;
	}
	*out = a;
	*n_out = k;
	return 0;
}

int allow_ensure_names(struct mitm *m)
{
	char norm[NAME_MAX_LEN + 1];
	bool want = false;

	for (size_t i = 0; i < m->n_allow && !want; i++)
		want = m->allow[i].kind == ENTRY_NAME;
	if (m->names.e || !want)
		return 0;
	if (names_init(&m->names, (uint32_t)m->n_add_hosts) < 0)
		return -ENOMEM;
	/* --add-host pairs are names the guest resolves without DNS: permanent, whatever the list
	 * says now (an entry added later may want them). */
	for (size_t i = 0; i < m->n_add_hosts; i++)
		if (host_normalize(m->add_hosts[i].host, norm, sizeof(norm)) &&
		    names_add(&m->names, norm, ntohl(m->add_hosts[i].ip.s_addr), NAMES_FOREVER) < 0)
			return -ENOMEM;
	return 0;
}

/* ---- changes while the VM runs ---- */

static int list_texts(const struct allow_entry *a, size_t n, char ***out)
{
	char **v = calloc(n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(v[i] = strdup(a[i].text))) {
			strv_free(v);
			return -ENOMEM;
		}
	*out = v;
	return 0;
}

int mitm_allow_list(const struct mitm *m, char ***out)
{
	return list_texts(m->allow, m->n_allow, out);
}

/* The new list's texts: SET = hosts; ADD = the current list then hosts; DELETE = the current
 * list without hosts. changed collects what ADD/DELETE really changed. */
static int compose(const struct mitm *m, enum mitm_allow_op op, char *const *hosts, size_t n,
		   const char **next, size_t *n_next, const char **changed, size_t *n_changed)
{
	char t[ENTRY_TEXT_MAX];

	*n_next = *n_changed = 0;
	if (op != MITM_ALLOW_SET)
		for (size_t i = 0; i < m->n_allow; i++) {
			bool drop = false;
			for (size_t j = 0; op == MITM_ALLOW_DELETE && j < n && !drop; j++)
				drop = trim_copy(hosts[j], t, sizeof(t)) && !strcmp(t, m->allow[i].text);
			if (drop)
				changed[(*n_changed)++] = m->allow[i].text;
			else
				next[(*n_next)++] = m->allow[i].text;
		}
	if (op == MITM_ALLOW_DELETE)
		return 0;
	for (size_t j = 0; j < n; j++) {
		bool present = !trim_copy(hosts[j], t, sizeof(t)) || !*t;
		for (size_t i = 0; i < *n_next && !present; i++)
			present = !strcmp(next[i], t);
		next[(*n_next)++] = hosts[j];  /* allow_parse trims, drops blanks and repeats */
		if (!present && op == MITM_ALLOW_ADD)
			changed[(*n_changed)++] = hosts[j];
	}
	return 0;
}

static int copy_trimmed(const char **v, size_t n, char ***out)
{
	char t[ENTRY_TEXT_MAX], **c = calloc(n + 1, sizeof(*c));
	size_t k = 0;

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		if (!trim_copy(v[i], t, sizeof(t)))
			continue;
		for (size_t j = 0; j < k && !dup; j++)
			dup = !strcmp(c[j], t);
		if (dup)
			continue;
		if (!(c[k++] = strdup(t))) {
			strv_free(c);
			return -ENOMEM;
		}
	}
	*out = c;
	return 0;
}

int mitm_allow_update(struct mitm *m, enum mitm_allow_op op, char *const *hosts, size_t n,
		      char ***changed, struct ml_err *e)
{
	_cleanup_free_ const char **next = calloc(m->n_allow + n + 1, sizeof(*next));
	_cleanup_free_ const char **diff = calloc(m->n_allow + n + 1, sizeof(*diff));
	struct allow_entry *a = NULL;
	size_t n_next, n_diff, n_a;
	int r;

	if (changed)
		*changed = NULL;
	if (!next || !diff)
		return ml_err_set(e, -ENOMEM, "allow-list: out of memory");
	compose(m, op, hosts, n, next, &n_next, diff, &n_diff);
	if ((r = allow_parse((char *const *)next, n_next, &a, &n_a, e)) < 0)
		return r;
	if (changed && (op == MITM_ALLOW_SET ? list_texts(a, n_a, changed)
					     : copy_trimmed(diff, n_diff, changed)) < 0) {
		allow_entries_free(a, n_a);
		return ml_err_set(e, -ENOMEM, "allow-list: out of memory");
	}
	allow_entries_free(m->allow, m->n_allow);
	m->allow = a;
	m->n_allow = n_a;
	if (allow_ensure_names(m) < 0)
		return ml_err_set(e, -ENOMEM, "allow-list: out of memory for the names table");
	return 0;
}
