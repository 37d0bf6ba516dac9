/* mitm/hook.c - SDK hook callbacks over the SDK's callback socket. A rule with a callback_id, when
 * the sandbox has a callback socket, sends one JSON object (the exchange as the hook sees it:
 * host, method, path, query, request headers after the rule's own static changes and before
 * secrets; for the after phase also status, response headers and whether it is SSE) over a new
 * connection (worker.c, callback.c), and applies the one object that comes back:
 *   action block (either phase) -> 403 "Blocked by policy";
 *   request.headers / request.query replace all of them, request.path rewrites the path;
 *   response.headers replace all response headers, response.body_replacements join the
 *   rewrite, response.set_body_base64 replaces the body.
 * Fail-open: a hook that cannot be reached, times out (the rule's timeout_ms), answers garbage
 * or an error is ignored, and the exchange goes on as if it had answered nothing. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "mitm/rules.h"

/* {Canonical-Name: [values]} of the live headers, or NULL if there are none. */
static json_t *headers_json(const struct hdrs *hd)
{
	json_t *o = json_object();

	for (uint32_t i = 0; o && i < hd->n; i++) {
		char name[256];
		json_t *list;

		if (hd->v[i].dead || hd->v[i].nlen >= sizeof(name))
			continue;
		memcpy(name, hdr_name(hd, &hd->v[i]), hd->v[i].nlen + 1);
		hdr_canonicalize(name);
		if (!(list = json_object_get(o, name))) {
			list = json_array();
			json_object_set_new(o, name, list);
		}
		json_array_append_new(list, json_string(hdr_value(hd, &hd->v[i])));
	}
	if (o && !json_object_size(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *query_json(const char *target)
{
	struct kv *q = NULL;
	size_t n = 0;
	json_t *o;

	if (query_parse(target, &q, &n) < 0 || !n) {
		kv_free(q, n);
		return NULL;
	}
	o = json_object();
	for (size_t i = 0; o && i < n; i++)
		if (!json_object_get(o, q[i].k))   /* the first value of each key */
			json_object_set_new(o, q[i].k, json_string(q[i].v));
	kv_free(q, n);
	return o;
}

static bool is_sse(const struct hdrs *hd)
{
	const char *ct = hdrs_get(hd, "Content-Type");

	return ct && !strncasecmp(ct, "text/event-stream", 17);
}

static char *request_json(const struct hx *hx, const struct rule *r, bool after)
{
	json_t *o = json_object(), *v;
	char *path = target_path(hx->x.target), *s = NULL;

	if (!o || !path)
		goto out;
	json_object_set_new(o, "callback_id", json_string(r->callback_id));
	json_object_set_new(o, "phase", json_string(after ? "after" : "before"));
	json_object_set_new(o, "host", json_string(hx->x.host));
	json_object_set_new(o, "method", json_string(hx->x.method));
	json_object_set_new(o, "path", json_string(path));
	if ((v = query_json(hx->x.target)))
		json_object_set_new(o, "query", v);
	if ((v = headers_json(&hx->req.hd)))
		json_object_set_new(o, "request_headers", v);
	if (after) {
		json_object_set_new(o, "status_code", json_integer(hx->resp.p.status_code));
		if ((v = headers_json(&hx->resp.hd)))
			json_object_set_new(o, "response_headers", v);
		json_object_set_new(o, "is_sse", json_boolean(is_sse(&hx->resp.hd)));
	}
	s = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	free(path);
	return s;
}

int hook_submit(struct mitm *m, struct hx *hx, const struct rule *r, bool after)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->kind = JOB_CALLBACK;
	j->ctx = r;
	j->after = after;
	j->timeout_ms = r->timeout_ms;
	j->sock_path = strdup(m->icpt->callback_socket);
	j->request = request_json(hx, r, after);
	if (!j->sock_path || !j->request) {
		job_free(j);
		return -ENOMEM;
	}
	return hx_submit(m, hx, j, after ? WAIT_AFTER_HOOK : WAIT_BEFORE_HOOK);
}

/* Replaces every live header with the object's {Name: [values]} (blank names, bad names and
 * values that could split a header are dropped). */
static int replace_headers(struct hdrs *hd, const json_t *o)
{
	const char *key;
	json_t *vals;

	for (uint32_t i = 0; i < hd->n; i++)
		hd->v[i].dead = true;
	json_object_foreach((json_t *)o, key, vals) {
		char name[256];
		size_t k, nl = strlen(key);
		json_t *v;

		if (!nl || nl >= sizeof(name) || !hdr_name_ok(key, nl))
			continue;
		memcpy(name, key, nl + 1);
		hdr_canonicalize(name);
		json_array_foreach(vals, k, v) {
			const char *s = json_string_value(v);

			if (s && hdr_value_ok(s, strlen(s)) && hdrs_add(hd, name, nl, s, strlen(s)) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static int replace_query(struct hx *hx, const json_t *o)
{
	size_t n = json_object_size(o), i = 0;
	struct kv *q = n ? calloc(n, sizeof(*q)) : NULL;
	char *path = target_path(hx->x.target), *t = NULL;
	const char *key;
	json_t *v;
	int e = (n && !q) || !path ? -ENOMEM : 0;

	json_object_foreach((json_t *)o, key, v) {
		if (e || !json_is_string(v))
			continue;
		q[i].k = strdup(key);
		q[i].v = strdup(json_string_value(v));
		e = q[i].k && q[i].v ? 0 : -ENOMEM;
		i++;
	}
	if (e == 0 && (e = target_with(path, q, i, &t)) == 0) {
		free(hx->x.target);
		hx->x.target = t;
	}
	kv_free(q, i);
	free(path);
	return e;
}

static int apply_request(struct hx *hx, const json_t *req)
{
	const json_t *h = json_object_get(req, "headers"), *q = json_object_get(req, "query");
	const char *path = json_string_value(json_object_get(req, "path"));
	int e = 0;

	if (json_is_object(h))
		e = replace_headers(&hx->req.hd, h);
	if (e == 0 && json_is_object(q))
		e = replace_query(hx, q);
	if (e == 0 && path && *path)
		e = target_set_path(hx, path);
	return e;
}

static int apply_response(struct hx *hx, const json_t *resp)
{
	const json_t *h = json_object_get(resp, "headers"), *repl = json_object_get(resp, "body_replacements");
	const char *b64 = json_string_value(json_object_get(resp, "set_body_base64"));
	size_t i;
	json_t *x;
	int e = 0;

	if (json_is_object(h))
		e = replace_headers(&hx->resp.hd, h);
	json_array_foreach((json_t *)repl, i, x) {
		const char *f = json_string_value(json_object_get(x, "find"));
		const char *r = json_string_value(json_object_get(x, "replace"));

		if (e == 0 && f && *f)
			e = bodyx_add_repl(hx, f, r ? r : "");
	}
	if (e == 0 && b64) {
		gnutls_datum_t in = { (unsigned char *)b64, (unsigned)strlen(b64) }, out = { 0 };

		if (gnutls_base64_decode2(&in, &out) < 0)
			return 0;   /* not base64: ignored, like any malformed reply */
		e = bodyx_set_body(hx, out.data, out.size);
		gnutls_free(out.data);
	}
	return e;
}

static bool nonempty(const json_t *o)
{
	return json_is_object(o) && json_object_size(o);
}

/* 1: the phase goes on, -1: answered. */
static int apply_reply(struct mitm *m, struct hx *hx, const struct rule *r, bool after, const char *text)
{
	json_t *o = text ? json_loads(text, 0, NULL) : NULL;
	const char *action = json_string_value(json_object_get(o, "action"));
	const char *err = json_string_value(json_object_get(o, "error"));
	const json_t *req = json_object_get(o, "request"), *resp = json_object_get(o, "response");
	int e = 0;

	if (!json_is_object(o) || (err && *err)) {
		ml_debug("mitm: hook %s: %s (ignored)", r->callback_id, err && *err ? err : "no usable reply");
		json_decref(o);
		return 1;
	}
	if (action && !strcasecmp(action, "block")) {
		json_decref(o);
		snprintf(hx->x.rule, sizeof(hx->x.rule), "%s", r->name);
		hx_local_reply(m, hx, 403, "Blocked by policy\n", true, "request blocked by policy");
		return -1;
	}
	if ((action && !strcasecmp(action, "mutate")) || nonempty(req) || nonempty(resp)) {
		e = after ? (json_is_object(resp) ? apply_response(hx, resp) : 0)
			  : (json_is_object(req) ? apply_request(hx, req) : 0);
		snprintf(hx->x.rule, sizeof(hx->x.rule), "%s", r->name);
	}
	json_decref(o);
	if (e < 0) {
		hx_local_reply(m, hx, 500, "out of memory\n", false, "out of memory");
		return -1;
	}
	return 1;
}

void rules_hook_done(struct mitm *m, struct hx *hx, struct job *j)
{
	bool after = j->after;

	hx->wait = WAIT_NONE;
	if (j->err)
		ml_debug("mitm: hook %s: %s (ignored)", ((const struct rule *)j->ctx)->callback_id, strerror(-j->err));
	if (apply_reply(m, hx, j->ctx, after, j->err ? NULL : j->response) < 0)
		return;
	if (!after) {
		req_hook_done(m, hx);
		return;
	}
	hx->rs = RS_HEAD;   /* (RS_WAIT ends) */
	if (rules_after(m, hx) > 0)
		resp_head_go(m, hx);
}
