/* mitm/rules.c - hook rules on an exchange.
 *
 * Before phase, on the request head (after the policy, before secrets): in rule order, for
 * each rule that matches the host (globs), method and path (a path.Match-style glob: `*` does
 * not cross `/`): block -> 403 "Blocked by policy"; else set/delete headers, set/delete query
 * keys (the query is then re-encoded sorted by key, as Go's url.Values does), rewrite the path;
 * then its SDK hook if it has one (hook.c; the loop resumes when the hook answers). After
 * phase, on the final response head: block -> 403 instead of the response; set/delete
 * response headers; body replacements are collected and applied by bodyx.c. The rule that
 * blocked or changed an exchange is named in its event.
 *
 * A request that an after-phase body rewrite may touch asks the upstream for an unencoded
 * body (Accept-Encoding: identity): replacements on gzip bytes would never match.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mitm/rules.h"

void kv_free(struct kv *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].k);
		free(v[i].v);
	}
	free(v);
}

char *target_path(const char *target)
{
	size_t n = strcspn(target, "?");

	return n ? strndup(target, n) : strdup("/");
}

bool rule_matches(const struct rule *r, const char *host, const char *method, const char *path)
{
	bool ok = !r->n_hosts;

	for (size_t i = 0; !ok && i < r->n_hosts; i++)
		ok = mitm_host_glob_match(r->hosts[i], host);
	if (!ok)
		return false;
	ok = !r->n_methods;
	for (size_t i = 0; !ok && i < r->n_methods; i++)
		ok = !strcasecmp(r->methods[i], method);
	return ok && (!r->path || fnmatch(r->path, *path ? path : "/", FNM_PATHNAME) == 0);
}

/* ---- the query ---- */
static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

static char *unescape(const char *s, size_t n)
{
	char *o = malloc(n + 1), *p = o;

	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+')
			*p++ = ' ';
		else if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
			 hexval((unsigned char)s[i + 2]) >= 0) {
			*p++ = (char)(hexval((unsigned char)s[i + 1]) << 4 | hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			*p++ = s[i];
		}
	}
	*p = '\0';
	return o;
}

int query_parse(const char *target, struct kv **out, size_t *n)
{
	const char *q = strchr(target, '?');
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (!q || !*++q)
		return 0;
	for (const char *c = q; *c; c++)
		cap += *c == '&';
	if (!(*out = calloc(cap + 1, sizeof(**out))))
		return -ENOMEM;
	while (*q) {
		size_t len = strcspn(q, "&"), kl = strcspn(q, "=");

		if (kl > len)
			kl = len;
		if (len) {
			struct kv *x = &(*out)[(*n)++];

			x->k = unescape(q, kl);
			x->v = kl < len ? unescape(q + kl + 1, len - kl - 1) : strdup("");
			if (!x->k || !x->v)
				return -ENOMEM;
		}
		q += len + (q[len] == '&');
	}
	return 0;
}

/* Go's url.QueryEscape: unreserved bytes stay, a space is '+', the rest %XX. */
static int put_escaped(struct iob *o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int r = isalnum(c) || strchr("-_.~", c) ? iob_put(o, &c, 1)
		      : c == ' ' ? iob_put(o, "+", 1) : iob_printf(o, "%%%02X", c);

		if (r < 0)
			return r;
	}
	return 0;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->k, ((const struct kv *)b)->k);
}

/* A byte that may stand in a request target as it is. */
static bool path_safe(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"#<>\\^`{|}?", c);
}

int target_with(const char *path, const struct kv *q, size_t nq, char **out)
{
	struct iob o = { 0 };
	struct kv *sorted = nq ? malloc(nq * sizeof(*sorted)) : NULL;
	int r = 0;

	if (nq && !sorted)
		return -ENOMEM;
	if (*path != '/')
		r = iob_put(&o, "/", 1);
	for (const unsigned char *p = (const unsigned char *)path; r == 0 && *p; p++)
		r = path_safe(*p) ? iob_put(&o, p, 1) : iob_printf(&o, "%%%02X", *p);
	if (nq) {
		memcpy(sorted, q, nq * sizeof(*sorted));
		/* stable for equal keys: insertion sort keeps their order */
		for (size_t i = 1; i < nq; i++)
			for (size_t j = i; j && by_key(&sorted[j - 1], &sorted[j]) > 0; j--) {
				struct kv t = sorted[j];
				sorted[j] = sorted[j - 1];
				sorted[j - 1] = t;
			}
	}
	for (size_t i = 0; r == 0 && i < nq; i++)
		if ((r = iob_put(&o, i ? "&" : "?", 1)) == 0 && (r = put_escaped(&o, sorted[i].k)) == 0 &&
		    (r = iob_put(&o, "=", 1)) == 0)
			r = put_escaped(&o, sorted[i].v);
	free(sorted);
	if (r == 0)
		r = iob_put(&o, "", 1);
	if (r < 0) {
		iob_free(&o);
		return -ENOMEM;
	}
	*out = (char *)o.d;
	return 0;
}

/* set (replacing every value of the key) and delete keys, then the new target */
static int apply_query(struct hx *hx, const struct rule *r)
{
	struct kv *q = NULL;
	size_t n = 0, cap;
	char *path = target_path(hx->x.target), *t = NULL;
	int e = path ? query_parse(hx->x.target, &q, &n) : -ENOMEM;

	cap = n + r->n_set_q;
	if (e == 0 && cap && !(q = realloc(q, cap * sizeof(*q))))
		e = -ENOMEM;
	size_t kept = 0;

	for (size_t i = 0; e == 0 && i < n; i++) {
		bool drop = false;

		for (size_t k = 0; k < r->n_del_q; k++)
			drop |= !strcmp(q[i].k, r->del_q[k]);
		for (size_t k = 0; k < r->n_set_q; k++)
			drop |= !strcmp(q[i].k, r->set_q[k].k);
		if (drop) {
			free(q[i].k);
			free(q[i].v);
		} else {
			q[kept++] = q[i];
		}
	}
	if (e == 0)
		n = kept;
	for (size_t k = 0; e == 0 && k < r->n_set_q; k++) {
		struct kv *x = &q[n++];

		x->k = strdup(r->set_q[k].k);
		x->v = strdup(r->set_q[k].v);
		if (!x->k || !x->v)
			e = -ENOMEM;
	}
	if (e == 0 && (e = target_with(path, q, n, &t)) == 0) {
		free(hx->x.target);
		hx->x.target = t;
	}
	kv_free(q, n);
	free(path);
	return e;
}

int target_set_path(struct hx *hx, const char *path)
{
	const char *q = strchr(hx->x.target, '?');
	struct kv *kv = NULL;
	size_t n = 0;
	char *t = NULL;
	int e = q ? query_parse(hx->x.target, &kv, &n) : 0;

	/* the query as it was (re-encoding it would change bytes no rule asked to change) */
	if (e == 0 && (e = target_with(path, NULL, 0, &t)) == 0 && q) {
		char *both;

		e = asprintf(&both, "%s%s", t, q) < 0 ? -ENOMEM : 0;
		free(t);
		t = e ? NULL : both;
	}
	kv_free(kv, n);
	if (e == 0) {
		free(hx->x.target);
		hx->x.target = t;
	}
	return e;
}

static int apply_before(struct hx *hx, const struct rule *r)
{
	struct hdrs *hd = &hx->req.hd;
	int e = 0;

	for (size_t i = 0; e == 0 && i < r->n_set_h; i++)
		e = hdrs_set(hd, r->set_h[i].k, r->set_h[i].v);
	for (size_t i = 0; i < r->n_del_h; i++)
		hdrs_del(hd, r->del_h[i]);
	if (e == 0 && (r->n_set_q || r->n_del_q))
		e = apply_query(hx, r);
	if (e == 0 && r->rewrite_path)
		e = target_set_path(hx, r->rewrite_path);
	if (r->action == RA_MUTATE)
		snprintf(hx->x.rule, sizeof(hx->x.rule), "%s", r->name);
	return e;
}

/* A body rewrite may follow: ask for the body unencoded. */
static void want_identity(struct mitm *m, struct hx *hx, const char *path)
{
	const struct mitm_rules *rs = m->icpt->rules;

	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].after && rs->v[i].n_repl && rule_matches(&rs->v[i], hx->x.host, hx->x.method, path)) {
			(void)hdrs_set(&hx->req.hd, "Accept-Encoding", "identity");   /* best effort */
			return;
		}
}

static void block(struct mitm *m, struct hx *hx, const struct rule *r)
{
	snprintf(hx->x.rule, sizeof(hx->x.rule), "%s", r->name);
	hx_local_reply(m, hx, 403, "Blocked by policy\n", true, "request blocked by policy");
}

int rules_before(struct mitm *m, struct hx *hx)
{
	const struct mitm_rules *rs = m->icpt->rules;

	for (size_t i = hx->x.rule_next; rs && i < rs->n; i++) {
		const struct rule *r = &rs->v[i];
		char *path;
		bool hit;

		if (r->after)
			continue;
		if (!(path = target_path(hx->x.target))) {
			hx_local_reply(m, hx, 500, "out of memory\n", false, "out of memory");
			return -1;
		}
		hit = rule_matches(r, hx->x.host, hx->x.method, path);
		free(path);
		if (!hit)
			continue;
		if (r->action == RA_BLOCK) {
			block(m, hx, r);
			return -1;
		}
		if (apply_before(hx, r) < 0) {
			hx_local_reply(m, hx, 500, "out of memory\n", false, "out of memory");
			return -1;
		}
		hx->x.rule_next = (int)i + 1;
		if (r->callback_id && m->icpt->callback_socket && hook_submit(m, hx, r, false) == 0)
			return 0;   /* (a hook that cannot even be queued is skipped: fail-open) */
	}
	if (rs) {
		char *path = target_path(hx->x.target);

		if (path)
			want_identity(m, hx, path);
		free(path);
	}
	return 1;
}

static void apply_after(struct hx *hx, const struct rule *r, int *e)
{
	struct hdrs *hd = &hx->resp.hd;

	for (size_t i = 0; *e == 0 && i < r->n_set_rh; i++)
		*e = hdrs_set(hd, r->set_rh[i].k, r->set_rh[i].v);
	for (size_t i = 0; i < r->n_del_rh; i++)
		hdrs_del(hd, r->del_rh[i]);
	for (size_t i = 0; *e == 0 && i < r->n_repl; i++)
		*e = bodyx_add_repl(hx, r->repl[i].k, r->repl[i].v);
	if (r->action == RA_MUTATE)
		snprintf(hx->x.rule, sizeof(hx->x.rule), "%s", r->name);
}

int rules_after(struct mitm *m, struct hx *hx)
{
	const struct mitm_rules *rs = m->icpt->rules;
	char *path = target_path(hx->x.target);
	int e = path ? 0 : -ENOMEM;

	for (size_t i = hx->x.rule_after_next; e == 0 && rs && i < rs->n; i++) {
		const struct rule *r = &rs->v[i];

		if (!r->after || !rule_matches(r, hx->x.host, hx->x.method, path))
			continue;
		if (r->action == RA_BLOCK) {
			free(path);
			block(m, hx, r);
			return -1;
		}
		apply_after(hx, r, &e);
		hx->x.rule_after_next = (int)i + 1;
		if (e == 0 && r->callback_id && m->icpt->callback_socket && hook_submit(m, hx, r, true) == 0) {
			free(path);
			hx->rs = RS_WAIT;
			return 0;
		}
	}
	free(path);
	if (e < 0) {
		hx->fatal = true;
		return -1;
	}
	bodyx_choose(hx);
	return 1;
}
