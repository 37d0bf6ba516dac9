/* rpc/createopts.c - decoding and checking `create` params (createopts.h). The order of the
 * checks and their messages are the protocol's: SDK users see them verbatim. */
#include "rpc/createopts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/strv.h"
#include "disk/disk.h"
#include "mitm/mitm.h"
#include "vfs/vfs.h"

#define DEFAULT_CPUS 1.0
#define DEFAULT_MEMORY_MB 512
#define DEFAULT_DISK_MB 5120
#define DEFAULT_TIMEOUT_S 300
#define DEFAULT_MTU 1500

/* ---- typed field readers: a wrong JSON type is the decoder's error ---- */
static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: case JSON_REAL: return "number";
	case JSON_TRUE: case JSON_FALSE: return "bool";
	default: return "null";
	}
}

static int type_error(struct ml_err *e, const json_t *v, const char *field, const char *want)
{
	return ml_err_set(e, -EINVAL, "json: cannot unmarshal %s into Go struct field %s of type %s",
			  json_kind(v), field, want);
}

/* Absent or null: *out untouched, 0. */
static int get_str(json_t *o, const char *key, const char *field, char **out, struct ml_err *e)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return type_error(e, v, field, "string");
	free(*out);
	*out = strdup(json_string_value(v));
	return *out ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
}

static int get_bool(json_t *o, const char *key, const char *field, bool *out, struct ml_err *e)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return type_error(e, v, field, "bool");
	*out = json_is_true(v);
	return 0;
}

static int get_num(json_t *o, const char *key, const char *field, bool integer, double *out, struct ml_err *e)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v) || (integer && !json_is_integer(v)))
		return type_error(e, v, field, integer ? "int" : "float64");
	*out = json_number_value(v);
	return 0;
}

static int get_obj(json_t *o, const char *key, const char *field, json_t **out, struct ml_err *e)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return type_error(e, v, field, "object");
	*out = v;
	return 0;
}

/* An array of strings into a vector; *present says whether the key was there (non-null). */
static int get_strv(json_t *o, const char *key, const char *field, char ***out, bool *present, struct ml_err *e)
{
	json_t *v = json_object_get(o, key);
	if (present)
		*present = v && !json_is_null(v);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return type_error(e, v, field, "[]string");
	size_t i;
	json_t *it;
	char **vec = calloc(1, sizeof(char *));
	if (!vec)
		return ml_err_set(e, -ENOMEM, "out of memory");
	json_array_foreach(v, i, it) {
		if (!json_is_string(it)) {
			strv_free(vec);
			return type_error(e, it, field, "string");
		}
		if (strv_append(&vec, json_string_value(it)) < 0) {
			strv_free(vec);
			return ml_err_set(e, -ENOMEM, "out of memory");
		}
	}
	strv_free(*out);
	*out = vec;
	return 0;
}

/* {"K": "V"} into KEY=VALUE entries, keys sorted so the environment is deterministic. */
static int get_env_map(json_t *o, const char *key, const char *field, char ***out, bool *present, struct ml_err *e)
{
	json_t *v = json_object_get(o, key);
	if (present)
		*present = v && !json_is_null(v);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return type_error(e, v, field, "map[string]string");
	const char *k;
	json_t *val;
	char **vec = calloc(1, sizeof(char *));
	if (!vec)
		return ml_err_set(e, -ENOMEM, "out of memory");
	json_object_foreach(v, k, val) {
		if (!json_is_string(val)) {
			strv_free(vec);
			return type_error(e, val, field, "string");
		}
		_cleanup_free_ char *kv = NULL;
		if (asprintf(&kv, "%s=%s", k, json_string_value(val)) < 0 || strv_append(&vec, kv) < 0) {
			strv_free(vec);
			return ml_err_set(e, -ENOMEM, "out of memory");
		}
	}
	qsort(vec, strv_len(vec), sizeof(char *), (int (*)(const void *, const void *))strcmp);
	strv_free(*out);
	*out = vec;
	return 0;
}

/* ---- sections ---- */
static int parse_resources(struct rpc_create *c, json_t *p, struct ml_err *e)
{
	json_t *res;
	double cpus = 0, mem = 0, disk = 0, tmo = 0;
	int r = get_obj(p, "resources", "CreateParams.resources", &res, e);
	if (r == 0 && res)
		r = get_num(res, "cpus", "CreateParams.resources.cpus", false, &cpus, e);
	if (r == 0 && res)
		r = get_num(res, "memory_mb", "CreateParams.resources.memory_mb", true, &mem, e);
	if (r == 0 && res)
		r = get_num(res, "disk_size_mb", "CreateParams.resources.disk_size_mb", true, &disk, e);
	if (r == 0 && res)
		r = get_num(res, "timeout_seconds", "CreateParams.resources.timeout_seconds", true, &tmo, e);
	if (r < 0)
		return r;
	/* "replaced if > 0" */
	c->cfg.cpus = cpus > 0 ? cpus : DEFAULT_CPUS;
	c->cfg.mem_mb = mem > 0 ? (unsigned)fmin(mem, 1 << 24) : DEFAULT_MEMORY_MB;
	c->cfg.disk_mb = disk > 0 ? (uint64_t)fmin(disk, 1 << 24) : DEFAULT_DISK_MB;
	json_t *rr = json_pack("{s:f, s:i, s:i, s:i}", "cpus", c->cfg.cpus, "memory_mb", (json_int_t)c->cfg.mem_mb,
			       "disk_size_mb", (json_int_t)c->cfg.disk_mb,
			       "timeout_seconds", (json_int_t)(tmo > 0 ? tmo : DEFAULT_TIMEOUT_S));
	return json_object_set_new(c->record, "resources", rr) < 0 ? ml_err_set(e, -ENOMEM, "out of memory") : 0;
}

/* add_hosts: [{"host","ip"}] -> "ip host" lines, checked as the CLI's --add-host. */
static int parse_add_hosts(struct rpc_create *c, json_t *net, struct ml_err *e)
{
	json_t *ah = json_object_get(net, "add_hosts");
	if (!ah || json_is_null(ah))
		return 0;
	if (!json_is_array(ah))
		return type_error(e, ah, "CreateParams.network.add_hosts", "[]api.HostIPMapping");
	size_t i;
	json_t *it;
	json_array_foreach(ah, i, it) {
		_cleanup_free_ char *host = NULL, *ip = NULL;
		if (!json_is_object(it))
			return type_error(e, it, "CreateParams.network.add_hosts", "api.HostIPMapping");
		int r = get_str(it, "host", "CreateParams.network.add_hosts.host", &host, e);
		if (r == 0)
			r = get_str(it, "ip", "CreateParams.network.add_hosts.ip", &ip, e);
		if (r < 0)
			return r;
		if (!host || !*host || strpbrk(host, " \t\r\n:"))
			return ml_err_set(e, -EINVAL, "invalid add-host mapping: invalid add-host hostname: \"%s\"",
					  host ? host : "");
		unsigned char buf[16];
		char norm[INET6_ADDRSTRLEN];
		int af = ip && inet_pton(AF_INET, ip, buf) == 1 ? AF_INET
			: ip && inet_pton(AF_INET6, ip, buf) == 1 ? AF_INET6 : 0;
		if (!af || !inet_ntop(af, buf, norm, sizeof(norm)))
			return ml_err_set(e, -EINVAL, "invalid add-host mapping: invalid add-host ip: \"%s\"", ip ? ip : "");
		_cleanup_free_ char *line = NULL;
		if (asprintf(&line, "%s %s", norm, host) < 0 || strv_append(&c->hosts, line) < 0)
			return ml_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

static int parse_dns(struct rpc_create *c, json_t *net, struct ml_err *e)
{
	int r = get_strv(net, "dns_servers", "CreateParams.network.dns_servers", &c->dns, NULL, e);
	if (r < 0)
		return r;
	for (size_t i = 0; c->dns && c->dns[i]; i++) {
		struct in_addr a;
		if (inet_pton(AF_INET, c->dns[i], &a) != 1)
			return ml_err_set(e, -EINVAL, "invalid configuration: network.dns_servers: \"%s\" is not an "
					  "IPv4 address (the host forwards the guest's queries to it)", c->dns[i]);
	}
	if (strv_len(c->dns) == 0) {
		strv_free(c->dns);
		c->dns = NULL;
		if (strv_append(&c->dns, "8.8.8.8") < 0 || strv_append(&c->dns, "8.8.4.4") < 0)
			return ml_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

/* no_network combinations, in the protocol's order */
static int check_no_network(json_t *net, struct ml_err *e)
{
	static const char *const keys[] = { "allowed_hosts", "secrets", "intercept", "interception" };
	for (size_t i = 0; i < 4; i++) {
		json_t *v = json_object_get(net, keys[i]);
		bool set = v && !json_is_null(v) && !json_is_false(v) &&
			   !(json_is_array(v) && json_array_size(v) == 0) &&
			   !(json_is_object(v) && json_object_size(v) == 0 && i == 1);
		if (set)
			return ml_err_set(e, -EINVAL, "invalid configuration: network.no_network cannot be combined "
					  "with network.%s", keys[i]);
	}
	return 0;
}

/* network.secrets (placeholders made here unless given), network.interception's rules and
 * callback socket (mitm/README.md "Interception") */
static int parse_interception(struct rpc_create *c, json_t *net, struct ml_err *e)
{
	json_t *icpt;
	int r;

	if ((r = mitm_secrets_parse(json_object_get(net, "secrets"), &c->secrets, &c->n_secrets, e)) < 0 ||
	    (r = get_obj(net, "interception", "CreateParams.network.interception", &icpt, e)) < 0)
		return r;
	if (icpt && ((r = mitm_rules_parse(json_object_get(icpt, "rules"), &c->rules, e)) < 0 ||
		     (r = get_str(icpt, "callback_socket", "CreateParams.network.interception.callback_socket",
				  &c->callback_socket, e)) < 0))
		return r;
	return 0;
}

static int parse_network(struct rpc_create *c, json_t *p, struct ml_err *e)
{
	json_t *net;
	int r = get_obj(p, "network", "CreateParams.network", &net, e);
	if (r < 0)
		return r;
	c->cfg.network = true;
	c->cfg.block_private_ips = net == NULL; /* a given network object replaces the default */
	c->cfg.mtu = DEFAULT_MTU;
	if (!net)
		return parse_dns(c, NULL, e);
	double mtu = 0;
	bool intercept = false, present = false;
	if ((r = get_bool(net, "no_network", "CreateParams.network.no_network", &c->no_network, e)) < 0 ||
	    (r = get_bool(net, "block_private_ips", "CreateParams.network.block_private_ips", &c->cfg.block_private_ips, e)) < 0 ||
	    (r = get_bool(net, "intercept", "CreateParams.network.intercept", &intercept, e)) < 0 ||
	    (r = get_num(net, "mtu", "CreateParams.network.mtu", true, &mtu, e)) < 0 ||
	    (r = get_str(net, "hostname", "CreateParams.network.hostname", &c->hostname, e)) < 0 ||
	    (r = get_strv(net, "allowed_hosts", "CreateParams.network.allowed_hosts", &c->allow_hosts, &present, e)) < 0)
		return r;
	if (c->no_network && (r = check_no_network(net, e)) < 0)
		return r;
	c->cfg.network = !c->no_network;
	if (mtu > 0)
		c->cfg.mtu = (unsigned)fmin(mtu, 1 << 20);
	if (c->cfg.network && (c->cfg.mtu < 576 || c->cfg.mtu > 65521))
		return ml_err_set(e, -EINVAL, "invalid configuration: network.mtu must be between 576 and 65521, got %u",
				  c->cfg.mtu);
	json_t *secrets = json_object_get(net, "secrets"), *icpt = json_object_get(net, "interception");
	bool has_secrets = json_is_object(secrets) && json_object_size(secrets) > 0;
	bool has_icpt = icpt && !json_is_null(icpt);
	c->intercept = strv_len(c->allow_hosts) > 0 || has_secrets || intercept || has_icpt;
	if ((r = parse_add_hosts(c, net, e)) < 0 || (r = parse_dns(c, net, e)) < 0)
		return r;
	return parse_interception(c, net, e);
}

/* ---- vfs: the workspace's mounts, rules and events (vfs/ checks them with the protocol's
 * messages) ---- */
static int parse_mount(struct rpc_create *c, const char *guest, json_t *m, struct ml_err *e)
{
	if (!json_is_object(m))
		return type_error(e, m, "CreateParams.vfs.mounts", "api.MountConfig");
	struct vfs_mount_cfg mc = { 0 };
	_cleanup_free_ char *type = NULL;
	int r = get_str(m, "type", "CreateParams.vfs.mounts.type", &type, e);
	if (r == 0)
		r = get_str(m, "host_path", "CreateParams.vfs.mounts.host_path", &mc.host_path, e);
	if (r == 0)
		r = get_bool(m, "readonly", "CreateParams.vfs.mounts.readonly", &mc.readonly, e);
	if (r < 0) {
		vfs_mount_cfg_free(&mc);
		return r;
	}
	mc.type = vfs_mount_type_parse(type ? type : "");
	json_t *up = json_object_get(m, "upper"), *lo = json_object_get(m, "lower");
	mc.upper_lower = (up && !json_is_null(up)) || (lo && !json_is_null(lo));
	if (!(mc.guest_path = strdup(guest)) || vfs_config_add_mount(&c->vfs, &mc) < 0) {
		vfs_mount_cfg_free(&mc);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

static int parse_vfs_rule(struct rpc_create *c, json_t *j, struct ml_err *e)
{
	if (!json_is_object(j))
		return type_error(e, j, "CreateParams.vfs.interception.rules", "api.VFSHookRule");
	struct vfs_rule rule = { 0 };
	_cleanup_free_ char *phase = NULL, *action = NULL;
	_cleanup_strv_ char **ops = NULL;
	double tmo = 0;
	int r = get_str(j, "name", "CreateParams.vfs.interception.rules.name", &rule.name, e);
	if (r == 0)
		r = get_str(j, "phase", "CreateParams.vfs.interception.rules.phase", &phase, e);
	if (r == 0)
		r = get_str(j, "path", "CreateParams.vfs.interception.rules.path", &rule.path, e);
	if (r == 0)
		r = get_str(j, "action", "CreateParams.vfs.interception.rules.action", &action, e);
	if (r == 0)
		r = get_strv(j, "ops", "CreateParams.vfs.interception.rules.ops", &ops, NULL, e);
	if (r == 0)
		r = get_num(j, "timeout_ms", "CreateParams.vfs.interception.rules.timeout_ms", true, &tmo, e);
	rule.after = phase && !strcasecmp(phase, "after");
	rule.ops = vfs_ops_mask((const char *const *)ops, strv_len(ops));
	rule.action = vfs_action_parse(action ? action : "");
	rule.timeout_ms = (int)fmin(fmax(tmo, 0), 1 << 30);
	struct vfs_rule *nr = r == 0 ? realloc(c->vfs.rules, (c->vfs.n_rules + 1) * sizeof(*nr)) : NULL;
	if (!nr) {
		vfs_rule_free(&rule);
		return r < 0 ? r : ml_err_set(e, -ENOMEM, "out of memory");
	}
	c->vfs.rules = nr;
	nr[c->vfs.n_rules++] = rule;
	return 0;
}

static int parse_vfs_interception(struct rpc_create *c, json_t *icpt, struct ml_err *e)
{
	c->vfs.interception = true;
	int r = get_bool(icpt, "emit_events", "CreateParams.vfs.interception.emit_events", &c->vfs.emit_events, e);
	json_t *rules = json_object_get(icpt, "rules");
	if (r < 0 || !rules || json_is_null(rules))
		return r;
	if (!json_is_array(rules))
		return type_error(e, rules, "CreateParams.vfs.interception.rules", "[]api.VFSHookRule");
	size_t i;
	json_t *it;
	json_array_foreach(rules, i, it)
		if ((r = parse_vfs_rule(c, it, e)) < 0)
			return r;
	return 0;
}

static int parse_vfs(struct rpc_create *c, json_t *p, struct ml_err *e)
{
	json_t *vfs, *mounts = NULL, *icpt;
	int r = get_obj(p, "vfs", "CreateParams.vfs", &vfs, e);
	if (r < 0 || !vfs)
		return r;
	if ((r = get_str(vfs, "workspace", "CreateParams.vfs.workspace", &c->vfs.workspace, e)) < 0 ||
	    (r = get_obj(vfs, "mounts", "CreateParams.vfs.mounts", &mounts, e)) < 0 ||
	    (r = get_obj(vfs, "interception", "CreateParams.vfs.interception", &icpt, e)) < 0)
		return r;
	const char *k;
	json_t *v;
	json_object_foreach(mounts, k, v)
		if ((r = parse_mount(c, k, v, e)) < 0)
			return r;
	if (icpt && (r = parse_vfs_interception(c, icpt, e)) < 0)
		return r;
	c->has_vfs = c->vfs.n_mounts > 0;
	return vfs_config_validate(&c->vfs, e);
}

/* extra_disks: [{host_path, guest_mount, readonly}], checked like --disk (after validation:
 * a failure is the VM's, -32000 "invalid extra disk config: ...") */
static int parse_disks(struct rpc_create *c, json_t *p, struct ml_err *e)
{
	json_t *d = json_object_get(p, "extra_disks");
	if (!d || json_is_null(d))
		return 0;
	if (!json_is_array(d))
		return type_error(e, d, "CreateParams.extra_disks", "[]api.DiskMount");
	c->disks = calloc(json_array_size(d) + 1, sizeof(*c->disks));
	if (!c->disks)
		return ml_err_set(e, -ENOMEM, "out of memory");
	size_t i;
	json_t *it;
	json_array_foreach(d, i, it) {
		struct disk_spec *ds = &c->disks[c->n_disks];
		if (!json_is_object(it))
			return type_error(e, it, "CreateParams.extra_disks", "api.DiskMount");
		int r = get_str(it, "host_path", "CreateParams.extra_disks.host_path", &ds->host_path, e);
		if (r == 0)
			r = get_str(it, "guest_mount", "CreateParams.extra_disks.guest_mount", &ds->guest_mount, e);
		if (r == 0)
			r = get_bool(it, "readonly", "CreateParams.extra_disks.readonly", &ds->readonly, e);
		c->n_disks++;
		if (r < 0)
			return r;
	}
	return 0;
}

int rpc_create_check_disks(struct rpc_create *c, struct ml_err *e)
{
	for (size_t i = 0; i < c->n_disks; i++) {
		struct disk_spec *d = &c->disks[i];
		if (!d->host_path || !*d->host_path || !d->guest_mount || !*d->guest_mount)
			return ml_err_set(e, -EINVAL, "invalid extra disk config: host_path and guest_mount are required");
		if (disk_spec_check(d, c->has_vfs ? c->vfs.workspace : NULL, e) < 0)
			return ml_err_wrap(e, "invalid extra disk config");
	}
	return c->n_disks && disk_specs_check_set(c->disks, c->n_disks, e) < 0 ? ml_err_wrap(e, "invalid extra disk config") : 0;
}

static int parse_image_config(struct rpc_create *c, json_t *p, struct ml_err *e)
{
	json_t *ic;
	struct rpc_image_config *x = &c->image_config;
	int r = get_obj(p, "image_config", "CreateParams.image_config", &ic, e);
	if (r < 0 || !ic)
		return r;
	if ((r = get_str(ic, "user", "CreateParams.image_config.user", &x->user, e)) < 0 ||
	    (r = get_str(ic, "working_dir", "CreateParams.image_config.working_dir", &x->working_dir, e)) < 0 ||
	    (r = get_strv(ic, "entrypoint", "CreateParams.image_config.entrypoint", &x->entrypoint, &x->has_entrypoint, e)) < 0 ||
	    (r = get_strv(ic, "cmd", "CreateParams.image_config.cmd", &x->cmd, &x->has_cmd, e)) < 0)
		return r;
	return get_env_map(ic, "env", "CreateParams.image_config.env", &x->env, &x->has_env, e);
}

static int parse_all(struct rpc_create *c, json_t *p, struct ml_err *e)
{
	_cleanup_free_ char *id = NULL;
	int r = get_str(p, "image", "CreateParams.image", &c->image, e);
	if (r == 0)
		r = get_str(p, "id", "CreateParams.id", &id, e);
	if (r == 0)
		r = get_bool(p, "privileged", "CreateParams.privileged", &c->privileged, e);
	if (r == 0)
		r = get_bool(p, "launch_entrypoint", "CreateParams.launch_entrypoint", &c->launch_entrypoint, e);
	if (r == 0)
		r = get_env_map(p, "env", "CreateParams.env", &c->env, NULL, e);
	if (r < 0)
		return r;
	if (!c->image || !*c->image)
		return ml_err_set(e, -EINVAL, "image is required (e.g., alpine:latest)");
	if (id && *id)
		return ml_err_set(e, -EINVAL, "id is internal-only and cannot be set");
	if ((r = parse_resources(c, p, e)) < 0 || (r = parse_network(c, p, e)) < 0 ||
	    (r = parse_vfs(c, p, e)) < 0 || (r = parse_image_config(c, p, e)) < 0)
		return r;
	return parse_disks(c, p, e);
}

/* The record keeps what the caller asked for, with defaults and without secret values. */
static int build_record(struct rpc_create *c, json_t *p, struct ml_err *e)
{
	json_t *keep[] = { json_object_get(p, "network"), json_object_get(p, "vfs"), json_object_get(p, "env"),
			   json_object_get(p, "image_config") };
	const char *names[] = { "network", "vfs", "env", "image_config" };
	for (size_t i = 0; i < 4; i++)
		if (keep[i] && !json_is_null(keep[i]))
			json_object_set_new(c->record, names[i], json_deep_copy(keep[i]));
	json_t *sec = json_object_get(json_object_get(c->record, "network"), "secrets");
	const char *k;
	json_t *v;
	json_object_foreach(sec, k, v)
		if (json_is_object(v) && json_object_get(v, "value"))
			json_object_set_new(v, "value", json_string("[redacted]"));
	json_object_set_new(c->record, "image", json_string(c->image));
	json_object_set_new(c->record, "privileged", json_boolean(c->privileged));
	json_object_set_new(c->record, "launch_entrypoint", json_boolean(c->launch_entrypoint));
	return json_object_size(c->record) >= 4 ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
}

int rpc_create_parse(json_t *params, const struct ml_settings *settings, struct rpc_create **out, struct ml_err *e)
{
	if (!json_is_object(params))
		return ml_err_set(e, -EINVAL, params ? "json: cannot unmarshal %s into Go value of type api.CreateParams"
					      : "image is required (e.g., alpine:latest)", params ? json_kind(params) : "");
	struct rpc_create *c = calloc(1, sizeof(*c));
	if (!c || !(c->record = json_object()))
		return free(c), ml_err_set(e, -ENOMEM, "out of memory");
	int r = parse_all(c, params, e);
	if (r == 0)
		r = build_record(c, params, e);
	if (r < 0) {
		rpc_create_free(c);
		return r;
	}
	c->cfg.settings = settings;
	c->cfg.image = c->image;
	c->cfg.hostname = c->hostname;
	c->cfg.dns = c->dns;
	c->cfg.hosts = c->hosts;
	c->cfg.allow_hosts = strv_len(c->allow_hosts) ? c->allow_hosts : NULL;
	if (c->has_vfs) {
		/* files the guest never chowned belong to the exec user: image_config's, else the
		 * image's USER (the sandbox fills that in) */
		if (c->image_config.user && *c->image_config.user && !(c->vfs.owner = strdup(c->image_config.user))) {
			rpc_create_free(c);
			return ml_err_set(e, -ENOMEM, "out of memory");
		}
		c->cfg.vfs = &c->vfs;
		c->workspace = c->vfs.workspace;
	}
	c->cfg.disks = c->disks;
	c->cfg.n_disks = c->n_disks;
	c->cfg.intercept = c->intercept;
	c->cfg.secrets = c->secrets;
	c->cfg.n_secrets = c->n_secrets;
	c->cfg.rules = c->rules;
	c->cfg.callback_socket = c->callback_socket && *c->callback_socket ? c->callback_socket : NULL;
	if (!(c->record_text = json_dumps(c->record, JSON_COMPACT))) {
		rpc_create_free(c);
		return ml_err_set(e, -ENOMEM, "out of memory");
	}
	c->cfg.record_json = c->record_text;
	*out = c;
	return 0;
}

int rpc_create_check_host(const struct rpc_create *c, struct ml_err *e)
{
	long host = sysconf(_SC_NPROCESSORS_ONLN);
	if (!isfinite(c->cfg.cpus) || c->cfg.cpus <= 0)
		return ml_err_set(e, -EINVAL, "create VM: cpus must be a finite number > 0");
	if (ceil(c->cfg.cpus) > (double)host)
		return ml_err_set(e, -EINVAL, "create VM: cpus must be <= host cpus (%ld)", host);
	/* the guest kernel and agent need about 100 MB before anything runs */
	if (c->cfg.mem_mb < 128)
		return ml_err_set(e, -EINVAL, "create VM: memory_mb must be >= 128, got %u", c->cfg.mem_mb);
	if (c->cfg.disk_mb < 64)
		return ml_err_set(e, -EINVAL, "create VM: disk_size_mb must be >= 64, got %llu",
				  (unsigned long long)c->cfg.disk_mb);
	return 0;
}

void rpc_create_free(struct rpc_create *c)
{
	if (!c)
		return;
	free(c->image);
	free(c->hostname);
	strv_free(c->dns);
	strv_free(c->hosts);
	strv_free(c->allow_hosts);
	strv_free(c->env);
	free(c->image_config.user);
	free(c->image_config.working_dir);
	strv_free(c->image_config.entrypoint);
	strv_free(c->image_config.cmd);
	strv_free(c->image_config.env);
	vfs_config_free(&c->vfs);
	for (size_t i = 0; i < c->n_disks; i++)
		disk_spec_clear(&c->disks[i]);
	free(c->disks);
	mitm_secrets_free(c->secrets, c->n_secrets);
	mitm_rules_free(c->rules);
	free(c->callback_socket);
	json_decref(c->record);
	free(c->record_text);
	free(c);
}

char **rpc_create_entrypoint(const struct rpc_create *c, const struct oci_config *img)
{
	char *const *ep = c->image_config.has_entrypoint ? c->image_config.entrypoint : img->entrypoint;
	char *const *cmd = c->image_config.has_cmd ? c->image_config.cmd : img->cmd;
	char **argv = calloc(1, sizeof(char *));
	for (size_t i = 0; argv && ep && ep[i]; i++)
		if (strv_append(&argv, ep[i]) < 0)
			return strv_free(argv), NULL;
	for (size_t i = 0; argv && cmd && cmd[i]; i++)
		if (strv_append(&argv, cmd[i]) < 0)
			return strv_free(argv), NULL;
	return argv;
}

char **rpc_create_exec_env(const struct rpc_create *c, const struct oci_config *img)
{
	char **env = calloc(1, sizeof(char *));
	char *const *base = c->image_config.has_env ? c->image_config.env : img->env;
	for (size_t i = 0; env && base && base[i]; i++)
		if (strv_env_set(&env, base[i]) < 0)
			return strv_free(env), NULL;
	for (size_t i = 0; env && c->env && c->env[i]; i++)
		if (strv_env_set(&env, c->env[i]) < 0)
			return strv_free(env), NULL;
	return env;
}
