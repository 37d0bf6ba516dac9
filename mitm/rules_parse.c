/* mitm/rules_parse.c - network hook rules from their wire form (the protocol's
 * NetworkHookRule), compiled as the SDKs expect: the phase is "after" or else "before"; the action
 * "block", "mutate" or else "allow", and an allow rule that carries mutations of its phase
 * becomes "mutate"; rules that neither block, mutate nor call back are dropped; header names
 * are canonicalized (x-hook -> X-Hook) with blank, invalid and repeated names dropped; body
 * replacements with an empty `find` are dropped; methods compare upper case. A header value or
 * a rewrite path with a line break or NUL would split the request we write: such a rule is
 * refused (query values are %-encoded). Mutations of the other phase are ignored. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/text.h"
#include "mitm/rules.h"

static char *trimmed(const char *s)
{
	return ml_trim_dup(s, strlen(s));
}

static const char *str_of(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool has_kv(const struct kv *v, size_t n, const char *k, bool nocase)
{
	for (size_t i = 0; i < n; i++)
		if (nocase ? !strcasecmp(v[i].k, k) : !strcmp(v[i].k, k))
			return true;
	return false;
}

static int bad(struct ml_err *e, const char *rule, const char *what, const char *key)
{
	return ml_err_set(e, -EINVAL, "invalid network hook \"%s\": %s %s holds a line break or NUL",
			  rule, what, key);
}

/* A {name: value} object: header maps (canonical names) or the query map. */
static int kv_map(const json_t *o, bool header, const char *rule, struct kv **out, size_t *n,
		  struct ml_err *e)
{
	const char *key;
	json_t *val;

	*out = NULL;
	*n = 0;
	if (!json_is_object(o) || !json_object_size(o))
		return 0;
	if (!(*out = calloc(json_object_size(o), sizeof(**out))))
		return -ENOMEM;
	json_object_foreach((json_t *)o, key, val) {
		char *k = trimmed(key), *v;

		if (!k)
			return -ENOMEM;
		if (header)
			hdr_canonicalize(k);
		if (!*k || (header && !hdr_name_ok(k, strlen(k))) || has_kv(*out, *n, k, header) ||
		    !json_is_string(val)) {
			free(k);
			continue;
		}
		v = strdup(json_string_value(val));
		(*out)[(*n)++] = (struct kv){ k, v };
		if (!v)
			return -ENOMEM;
		if (header && !hdr_value_ok(v, strlen(v)))
			return bad(e, rule, "the value of header", k);   /* (query values are %-encoded) */
	}
	return 0;
}

/* A [name, ...] list: header names (canonical) or query keys; blanks and repeats dropped. */
static int name_list(const json_t *a, bool header, char ***out, size_t *n)
{
	size_t i;
	json_t *val;

	*out = NULL;
	*n = 0;
	if (!json_is_array(a) || !json_array_size(a))
		return 0;
	if (!(*out = calloc(json_array_size(a), sizeof(char *))))
		return -ENOMEM;
	json_array_foreach((json_t *)a, i, val) {
		char *s;
		bool dup = false;

		if (!json_is_string(val) || !(s = trimmed(json_string_value(val))))
			continue;
		if (header)
			hdr_canonicalize(s);
		for (size_t k = 0; k < *n; k++)
			dup |= header ? !strcasecmp((*out)[k], s) : !strcmp((*out)[k], s);
		if (!*s || dup) {
			free(s);
			continue;
		}
		(*out)[(*n)++] = s;
	}
	return 0;
}

static int replacements(const json_t *a, const char *rule, struct kv **out, size_t *n, struct ml_err *e)
{
	size_t i;
	json_t *val;

	(void)rule;
	(void)e;
	*out = NULL;
	*n = 0;
	if (!json_is_array(a) || !json_array_size(a))
		return 0;
	if (!(*out = calloc(json_array_size(a), sizeof(**out))))
		return -ENOMEM;
	json_array_foreach((json_t *)a, i, val) {
		const char *f = str_of(val, "find"), *r = str_of(val, "replace");

		if (!f || !*f)
			continue;   /* an empty find is dropped */
		struct kv *x = &(*out)[(*n)++];

		x->k = strdup(f);
		x->v = strdup(r ? r : "");
		if (!x->k || !x->v)
			return -ENOMEM;
	}
	return 0;
}

static int globs(const json_t *a, bool upper, char ***out, size_t *n)
{
	int r = name_list(a, false, out, n);

	for (size_t i = 0; r == 0 && upper && i < *n; i++)
		for (char *c = (*out)[i]; *c; c++)
			*c = (char)toupper((unsigned char)*c);
	return r;
}

static void rule_free(struct rule *r)
{
	free(r->name);
	for (size_t i = 0; i < r->n_hosts; i++)
		free(r->hosts[i]);
	for (size_t i = 0; i < r->n_methods; i++)
		free(r->methods[i]);
	free(r->hosts);
	free(r->methods);
	free(r->path);
	free(r->callback_id);
	kv_free(r->set_h, r->n_set_h);
	kv_free(r->set_q, r->n_set_q);
	kv_free(r->set_rh, r->n_set_rh);
	kv_free(r->repl, r->n_repl);
	for (size_t i = 0; i < r->n_del_h; i++)
		free(r->del_h[i]);
	for (size_t i = 0; i < r->n_del_q; i++)
		free(r->del_q[i]);
	for (size_t i = 0; i < r->n_del_rh; i++)
		free(r->del_rh[i]);
	free(r->del_h);
	free(r->del_q);
	free(r->del_rh);
	free(r->rewrite_path);
	memset(r, 0, sizeof(*r));
}

/* The mutations of the phase the rule is not in never apply: drop them. */
static void keep_phase(struct rule *r)
{
	struct rule other = { 0 };

	if (r->after) {
		other.set_h = r->set_h, other.n_set_h = r->n_set_h;
		other.set_q = r->set_q, other.n_set_q = r->n_set_q;
		other.del_h = r->del_h, other.n_del_h = r->n_del_h;
		other.del_q = r->del_q, other.n_del_q = r->n_del_q;
		other.rewrite_path = r->rewrite_path;
		r->set_h = r->set_q = NULL, r->del_h = r->del_q = NULL, r->rewrite_path = NULL;
		r->n_set_h = r->n_set_q = r->n_del_h = r->n_del_q = 0;
	} else {
		other.set_rh = r->set_rh, other.n_set_rh = r->n_set_rh;
		other.repl = r->repl, other.n_repl = r->n_repl;
		other.del_rh = r->del_rh, other.n_del_rh = r->n_del_rh;
		r->set_rh = r->repl = NULL, r->del_rh = NULL;
		r->n_set_rh = r->n_repl = r->n_del_rh = 0;
	}
	rule_free(&other);
}

static bool mutates(const struct rule *r)
{
	return r->n_set_h || r->n_del_h || r->n_set_q || r->n_del_q || r->rewrite_path ||
	       r->n_set_rh || r->n_del_rh || r->n_repl;
}

static int compile(const json_t *j, struct rule *r, bool *keep, struct ml_err *e)
{
	const char *name = str_of(j, "name"), *phase = str_of(j, "phase"), *action = str_of(j, "action");
	const char *path = str_of(j, "path"), *cb = str_of(j, "callback_id"), *rw = str_of(j, "rewrite_path");
	json_t *tm = json_object_get(j, "timeout_ms");
	int x = 0;

	r->name = strdup(name ? name : "");
	r->after = phase && !strcasecmp(phase, "after");
	r->action = action && !strcasecmp(action, "block") ? RA_BLOCK
		  : action && !strcasecmp(action, "mutate") ? RA_MUTATE : RA_ALLOW;
	r->path = path && *path ? strdup(path) : NULL;
	r->callback_id = cb && *cb ? strdup(cb) : NULL;
	r->rewrite_path = rw && *rw ? strdup(rw) : NULL;
	r->timeout_ms = json_is_integer(tm) && json_integer_value(tm) > 0 ? (unsigned)json_integer_value(tm) : 0;
	if (!r->name)
		return -ENOMEM;
	if (r->rewrite_path && !hdr_value_ok(r->rewrite_path, strlen(r->rewrite_path)))
		return bad(e, r->name, "rewrite_path", "");
	if ((x = globs(json_object_get(j, "hosts"), false, &r->hosts, &r->n_hosts)) < 0 ||
	    (x = globs(json_object_get(j, "methods"), true, &r->methods, &r->n_methods)) < 0 ||
	    (x = kv_map(json_object_get(j, "set_headers"), true, r->name, &r->set_h, &r->n_set_h, e)) < 0 ||
	    (x = name_list(json_object_get(j, "delete_headers"), true, &r->del_h, &r->n_del_h)) < 0 ||
	    (x = kv_map(json_object_get(j, "set_query"), false, r->name, &r->set_q, &r->n_set_q, e)) < 0 ||
	    (x = name_list(json_object_get(j, "delete_query"), false, &r->del_q, &r->n_del_q)) < 0 ||
	    (x = kv_map(json_object_get(j, "set_response_headers"), true, r->name, &r->set_rh, &r->n_set_rh, e)) < 0 ||
	    (x = name_list(json_object_get(j, "delete_response_headers"), true, &r->del_rh, &r->n_del_rh)) < 0 ||
	    (x = replacements(json_object_get(j, "body_replacements"), r->name, &r->repl, &r->n_repl, e)) < 0)
		return x == -ENOMEM ? ml_err_set(e, x, "out of memory") : x;
	keep_phase(r);
	if (r->action == RA_ALLOW && mutates(r))
		r->action = RA_MUTATE;
	*keep = r->action == RA_BLOCK || mutates(r) || r->callback_id;
	return 0;
}

int mitm_rules_parse(const struct json_t *rules, struct mitm_rules **out, struct ml_err *e)
{
	struct mitm_rules *rs = calloc(1, sizeof(*rs));
	size_t i;
	json_t *j;

	*out = NULL;
	if (!rs)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (json_is_array(rules) && json_array_size(rules) &&
	    !(rs->v = calloc(json_array_size(rules), sizeof(*rs->v)))) {
		free(rs);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	json_array_foreach((json_t *)rules, i, j) {
		struct rule *r = &rs->v[rs->n];
		bool keep = false;
		int x = json_is_object(j) ? compile(j, r, &keep, e) : 0;

		if (x < 0) {
			rule_free(r);
			mitm_rules_free(rs);
			return x;
		}
		if (keep)
			rs->n++;
		else
			rule_free(r);
	}
	*out = rs;
	return 0;
}

void mitm_rules_free(struct mitm_rules *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->n; i++)
		rule_free(&rs->v[i]);
	free(rs->v);
	free(rs);
}

size_t mitm_rules_count(const struct mitm_rules *rs)
{
	return rs ? rs->n : 0;
}
