/* mitm/audit.c - every decision of the intercepting proxies, twice: as an event for whoever
 * listens (rpc `event` notifications of type network) and as one JSON line in the
 * VM's egress.jsonl, so a user can see afterwards what a sandbox reached.
 *
 * Lines are buffered and written once per poll round (a keep-alive client making thousands of
 * requests a second costs one write per round, not one per request). The file is bounded: past
 * AUDIT_MAX_BYTES it becomes egress.jsonl.1 (replacing the previous one) and a new one starts.
 * Secret values are never in an event: the URL is the one the guest sent (placeholders), and
 * only the names of the substituted secrets are listed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "mitm/intercept.h"

#define AUDIT_FLUSH_AT (64u << 10)

static void put_json_str(struct iob *b, const char *s)
{
	iob_put(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			iob_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			iob_printf(b, "\\u%04x", *p);
		else
			iob_put(b, p, 1);
	}
	iob_put(b, "\"", 1);
}

static void put_time(struct iob *b, int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char t[32];

	gmtime_r(&s, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	iob_printf(b, "\"%s.%03dZ\"", t, (int)(ms % 1000));
}

static void audit_open(struct intercept *ic)
{
	struct stat st;

	ic->audit_fd = open(ic->audit_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (ic->audit_fd < 0) {
		ml_warn("mitm: audit file %s: %s (decisions are not recorded)", ic->audit_path, strerror(errno));
		return;
	}
	ic->audit_size = fstat(ic->audit_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void rotate(struct intercept *ic)
{
	char old[4096];

	close(ic->audit_fd);
	ic->audit_fd = -1;
	if (snprintf(old, sizeof(old), "%s.1", ic->audit_path) < (int)sizeof(old) &&
	    rename(ic->audit_path, old) < 0)
		ml_warn("mitm: rotating %s: %s", ic->audit_path, strerror(errno));
	audit_open(ic);
}

void audit_flush(struct mitm *m)
{
	struct intercept *ic = m->icpt;
	ssize_t w;

	if (!ic || !ic->audit_buf.len)
		return;
	if (ic->audit_fd < 0) {
		iob_free(&ic->audit_buf);
		return;
	}
	if (ic->audit_size + ic->audit_buf.len > AUDIT_MAX_BYTES)
		rotate(ic);
	if (ic->audit_fd >= 0) {
		w = write(ic->audit_fd, ic->audit_buf.d + ic->audit_buf.off, ic->audit_buf.len);
		if (w < 0)
			ml_debug("mitm: audit write: %s", strerror(errno));
		else
			ic->audit_size += (uint64_t)w;
	}
	iob_free(&ic->audit_buf);
}

static void audit_line(struct intercept *ic, const struct mitm_http_event *ev)
{
	struct iob *b = &ic->audit_buf;

	iob_put(b, "{\"time\":", 8);
	put_time(b, ev->time_ms);
	iob_put(b, ",\"host\":", 8);
	put_json_str(b, ev->host);
	iob_put(b, ",\"method\":", 10);
	put_json_str(b, ev->method);
	iob_put(b, ",\"path\":", 8);
	put_json_str(b, ev->path);
	iob_printf(b, ",\"status\":%d,\"blocked\":%s", ev->status, ev->blocked ? "true" : "false");
	if (*ev->reason) {
		iob_put(b, ",\"reason\":", 10);
		put_json_str(b, ev->reason);
	}
	if (*ev->rule) {
		iob_put(b, ",\"rule\":", 8);
		put_json_str(b, ev->rule);
	}
	if (ev->n_secrets) {
		iob_put(b, ",\"secrets\":[", 12);
		for (size_t i = 0; i < ev->n_secrets; i++) {
			if (i)
				iob_put(b, ",", 1);
			put_json_str(b, ev->secrets[i]);
		}
		iob_put(b, "]", 1);
	}
	iob_printf(b, ",\"request_bytes\":%llu,\"response_bytes\":%llu,\"duration_ms\":%u}\n",
		   (unsigned long long)ev->request_bytes, (unsigned long long)ev->response_bytes,
		   ev->duration_ms);
}

void audit_event(struct mitm *m, const struct mitm_http_event *ev)
{
	struct intercept *ic = m->icpt;

	if (ev->blocked)
		m->st.requests_blocked++;
	else
		m->st.requests_proxied++;
	if (ic->cfg.event)
		ic->cfg.event(ic->cfg.event_arg, ev);
	if (!ic->audit_path || ic->audit_fd < 0)
		return;
	audit_line(ic, ev);
	if (ic->audit_buf.len >= AUDIT_FLUSH_AT)
		audit_flush(m);
}
