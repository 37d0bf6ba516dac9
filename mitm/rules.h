/* mitm/rules.h - internal to mitm/: network hook rules.
 *   rules_parse.c  the wire form (JSON) compiled (mitm_rules_parse)
 *   rules.c        matching and the static before/after effects on an exchange
 *   hook.c         the SDK callback: the JSON request, the reply applied
 *   bodyx.c        response body rewrites: SSE data: lines as they stream, a whole body, or a
 *                  body set by a callback */
#ifndef ML_MITM_RULES_H
#define ML_MITM_RULES_H

#include "mitm/proxy.h"

#define BODYX_MAX (16u << 20)   /* a body rewritten whole is held up to this much */

struct kv {
	char *k, *v;
};

enum rule_action { RA_ALLOW, RA_BLOCK, RA_MUTATE };

struct rule {
	char *name;
	bool after;                       /* phase */
	enum rule_action action;
	char **hosts;                     /* globs; none = every host */
	size_t n_hosts;
	char **methods;                   /* upper case; none = every method */
	size_t n_methods;
	char *path;                       /* a path.Match-style glob; NULL = every path */
	char *callback_id;                /* NULL: no SDK hook */
	unsigned timeout_ms;
	struct kv *set_h, *set_q, *set_rh, *repl;   /* request headers, query, response headers,
						     * body replacements (find -> replace) */
	size_t n_set_h, n_set_q, n_set_rh, n_repl;
	char **del_h, **del_q, **del_rh;
	size_t n_del_h, n_del_q, n_del_rh;
	char *rewrite_path;
};

struct mitm_rules {
	struct rule *v;
	size_t n;
};

/* rules.c: on the request head: 1 = go on, 0 = waiting for an SDK hook, -1 = answered. */
int rules_before(struct mitm *m, struct hx *hx);
/* On the final response head: the same. */
int rules_after(struct mitm *m, struct hx *hx);
bool rule_matches(const struct rule *r, const char *host, const char *method, const char *path);
/* The path of a target ("/a/b?q" -> "/a/b"), malloc'd; "" -> "/". */
char *target_path(const char *target);
/* The query of a target as key/value pairs (decoded), and back (keys sorted, encoded as Go's
 * url.Values.Encode does). */
int query_parse(const char *target, struct kv **out, size_t *n);
void kv_free(struct kv *v, size_t n);
int target_with(const char *path, const struct kv *q, size_t nq, char **out);
/* The exchange's target with a new path (its query kept as it is). */
int target_set_path(struct hx *hx, const char *path);

/* hook.c */
int hook_submit(struct mitm *m, struct hx *hx, const struct rule *r, bool after);
/* The reply to a hook, applied; then the phase goes on (or the exchange was answered). */
void rules_hook_done(struct mitm *m, struct hx *hx, struct job *j);

/* bodyx.c: the rewrite chosen for this response (replacements in order; set_body replaces the
 * upstream's body, which is then dropped). */
struct body_xform;
int bodyx_add_repl(struct hx *hx, const char *find, const char *replace);
int bodyx_set_body(struct hx *hx, const uint8_t *p, size_t n);
/* After the after-phase: decides how the body goes (nothing to do: frees the xform). */
void bodyx_choose(struct hx *hx);
/* The head waits for the whole body (a whole-body rewrite or a set body). */
bool bodyx_holds_head(const struct hx *hx);
int rules_xform_head(struct hx *hx);
int rules_xform_feed(struct hx *hx, const uint8_t *p, size_t n);
int rules_xform_end(struct hx *hx);

#endif
