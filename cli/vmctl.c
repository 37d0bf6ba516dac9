/* cli/vmctl.c - `matchlock port-forward` and `matchlock allow-list add|delete`: they change a
 * running VM through its control socket (the VM's owner applies them: new connections see the
 * change at once). A port-forward lives as long as this command: its forwards are tied to its
 * connection and go away with it (SIGINT/SIGTERM, or the VM's end). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/proc.h"
#include "base/cleanup.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/ctlclient.h"
#include "cli/specs.h"

/* ---- port-forward ---- */
static json_t *forwards_json(const struct strv *specs, struct ml_err *e)
{
	json_t *f = json_array();
	for (size_t i = 1; f && i < specs->n; i++) {
		int local, remote;
		if (specs_publish(specs->v[i], &local, &remote, e) < 0) {
			json_decref(f);
			return NULL;
		}
		json_array_append_new(f, json_pack("{s:i, s:i}", "local_port", local, "remote_port", remote));
	}
	return f;
}

static json_t *addresses_json(const struct strv *addrs)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < addrs->n; i++) {
		const char *x = !strcmp(addrs->v[i], "localhost") ? "127.0.0.1" : addrs->v[i];
		bool dup = false;
		for (size_t j = 0; j < json_array_size(a); j++)
			dup |= !strcmp(json_string_value(json_array_get(a, j)), x);
		if (!dup)
			json_array_append_new(a, json_string(x));
	}
	if (a && json_array_size(a) == 0)
		json_array_append_new(a, json_string("127.0.0.1"));
	return a;
}

/* Until SIGINT/SIGTERM, or the owner closes the socket (the VM ended). */
static void wait_until_stopped(int fd)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	_cleanup_close_ int sfd = ml_signalfd(sigs, 2);
	struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	char buf[4096];
	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return;
		if (p[0].revents)
			return;
		if (p[1].revents && read(fd, buf, sizeof(buf)) <= 0)
			return;
	}
}

int cmd_port_forward(int argc, char **argv, struct ml_err *e)
{
	struct strv addrs = { 0 }, pos = { 0 };
	struct flag t[] = {
		{ "address", 0, FLAG_STRING_LIST, &addrs, "Bind addresses (IP literal or localhost)", "[127.0.0.1]", false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	int r = args_parse_cmd(t, argc, argv, &pos, "Forward local ports to a running sandbox.\n\nUsage:\n"
			       "  matchlock port-forward [flags] <id> <[LOCAL:]REMOTE>...\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (pos.n < 2)
		return ml_err_set(e, -EINVAL, "requires at least 2 arg(s), only received %zu", pos.n);
	json_t *fwd = forwards_json(&pos, e);
	if (!fwd)
		return ml_err_wrap(e, "invalid port-forward specification");
	for (size_t i = 0; i < addrs.n; i++)
		if (strcmp(addrs.v[i], "localhost") && strspn(addrs.v[i], "0123456789.") != strlen(addrs.v[i])) {
			json_decref(fwd);
			return ml_err_set(e, -EINVAL, "invalid port-forward bind address: invalid bind address \"%s\" "
					  "(use an IP literal or localhost)", addrs.v[i]);
		}
	_cleanup_close_ int fd = ctlclient_connect(pos.v[0], e);
	if (fd < 0) {
		json_decref(fwd);
		return fd;
	}
	json_t *res = NULL;
	r = ctlclient_call(fd, "port_forward_add", json_pack("{s:o, s:o}", "forwards", fwd, "addresses",
							      addresses_json(&addrs)), &res, e);
	if (r < 0) {
		const char *p = "bind local port-forward listener";
		char msg[sizeof(e->msg)];
		snprintf(msg, sizeof(msg), "%s", e->msg);
		if (!strncmp(msg, p, strlen(p)))
			return ml_err_set(e, r, "start port-forward listener%s", msg + strlen(p));
		return r;
	}
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(res, "bindings"), i, b)
		fprintf(stderr, "Forwarding %s:%lld -> sandbox:%lld\n", json_string_value(json_object_get(b, "address")),
			(long long)json_integer_value(json_object_get(b, "local_port")),
			(long long)json_integer_value(json_object_get(b, "remote_port")));
	json_decref(res);
	strv_clear(&pos);
	wait_until_stopped(fd);
	return 0;
}

/* ---- allow-list ---- */
static char *joined(json_t *arr)
{
	size_t n = 1;
	for (size_t i = 0; i < json_array_size(arr); i++)
		n += strlen(json_string_value(json_array_get(arr, i))) + 1;
	char *s = calloc(1, n);
	for (size_t i = 0; s && i < json_array_size(arr); i++) {
		if (i)
			strcat(s, ",");
		strcat(s, json_string_value(json_array_get(arr, i)));
	}
	return s;
}

static json_t *hosts_json(const struct strv *pos)
{
	json_t *h = json_array();
	for (size_t i = 2; h && i < pos->n; i++) {
		_cleanup_free_ char *copy = strdup(pos->v[i]);
		char *save = NULL;
		for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
			while (*t == ' ' || *t == '\t')
				t++;
			size_t l = strlen(t);
			while (l && (t[l - 1] == ' ' || t[l - 1] == '\t'))
				t[--l] = '\0';
			bool dup = false;
			for (size_t j = 0; j < json_array_size(h); j++)
				dup |= !strcmp(json_string_value(json_array_get(h, j)), t);
			if (l && !dup)
				json_array_append_new(h, json_string(t));
		}
	}
	return h;
}

int cmd_allow_list(int argc, char **argv, struct ml_err *e)
{
	struct strv pos = { 0 };
	struct flag t[] = { { NULL, 0, 0, NULL, NULL, NULL, false, false } };
	int r = args_parse_cmd(t, argc, argv, &pos, "Change a running sandbox's allowed hosts.\n\nUsage:\n"
			       "  matchlock allow-list add <id> <host[,host...]>...\n"
			       "  matchlock allow-list delete <id> <host[,host...]>...\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	bool add = pos.n && !strcmp(pos.v[0], "add"), del = pos.n && !strcmp(pos.v[0], "delete");
	if (!add && !del)
		return ml_err_set(e, -EINVAL, pos.n ? "unknown command \"%s\" for \"matchlock allow-list\""
					      : "requires a subcommand: add or delete%s", pos.n ? pos.v[0] : "");
	if (pos.n < 2)
		return ml_err_set(e, -EINVAL, "requires at least 1 arg(s), only received 0");
	json_t *hosts = hosts_json(&pos);
	if (json_array_size(hosts) == 0) {
		json_decref(hosts);
		return ml_err_set(e, -EINVAL, "invalid allow-list host: expected one or more hosts (comma-separated)");
	}
	_cleanup_close_ int fd = ctlclient_connect(pos.v[1], e);
	if (fd < 0) {
		json_decref(hosts);
		return fd;
	}
	json_t *res = NULL;
	if ((r = ctlclient_call(fd, add ? "allow_list_add" : "allow_list_delete", json_pack("{s:o}", "hosts", hosts),
				&res, e)) < 0)
		return ml_err_wrap(e, "update allow-list");
	_cleanup_free_ char *changed = joined(json_object_get(res, add ? "added" : "removed"));
	_cleanup_free_ char *current = joined(json_object_get(res, "allowed_hosts"));
	if (changed && *changed)
		printf("%s %s: %s\n", add ? "Added to" : "Removed from", pos.v[1], changed);
	else
		printf("%s %s\n", add ? "No new hosts were added to" : "No hosts were removed from", pos.v[1]);
	printf("Current allow-list: %s\n", current && *current ? current : "(empty: all hosts allowed)");
	json_decref(res);
	strv_clear(&pos);
	return 0;
}
