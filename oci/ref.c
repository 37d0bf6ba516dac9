/* oci/ref.c - local image references: "name" -> "name:latest", "name:tag" and
 * "name@sha256:<hex>" kept. The tag is what follows the last ':' after the last '/', so
 * "localhost:5000/x" is a registry port, not a tag. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/internal.h"

static bool repo_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	       c == '/';
}

/* Components are non-empty; a port (":digits") may follow the first component only. */
static const char *check_repo(const char *r, size_t len)
{
	if (len == 0)
		return "empty repository name";
	if (len > 255)
		return "repository name too long";
	if (r[0] == '/' || r[len - 1] == '/')
		return "repository name must not start or end with '/'";
	const char *slash = memchr(r, '/', len);
	for (size_t i = 0; i < len; i++) {
		char c = r[i];
		if (c == ':') {
			if (!slash || r + i > slash)
				return "bad ':' in repository name";
			size_t j = i + 1;
			while (r + j < slash && isdigit((unsigned char)r[j]))
				j++;
			if (j == i + 1 || r + j != slash)
				return "registry port must be digits";
			i = j - 1;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			return "repository name must be lowercase";
		if (!repo_char(c))
			return "bad character in repository name";
		if (c == '/' && i + 1 < len && r[i + 1] == '/')
			return "empty path component";
	}
	return NULL;
}

static const char *check_tag(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 128)
		return "tag must be 1 to 128 characters";
	if (!(isalnum((unsigned char)t[0]) || t[0] == '_'))
		return "tag must start with a letter, digit or '_'";
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
			return "bad character in tag";
	return NULL;
}

char *oci_ref_normalize(const char *ref, struct ml_err *e)
{
	if (!ref || !*ref) {
		ml_err_set(e, -EINVAL, "invalid reference: empty");
		return NULL;
	}
	const char *why = NULL, *at = strchr(ref, '@');
	const char *last_slash = strrchr(ref, '/');
	const char *colon = strrchr(ref, ':');
	if (strlen(ref) > 512)
		why = "too long";
	else if (at) {
		if (!digest_valid(at + 1))
			why = "digest must be sha256:<64 lowercase hex>";
		else
			why = check_repo(ref, (size_t)(at - ref));
	} else if (colon && (!last_slash || colon > last_slash)) {
		why = check_repo(ref, (size_t)(colon - ref));
		if (!why)
			why = check_tag(colon + 1);
	} else
		why = check_repo(ref, strlen(ref));
	if (why) {
		ml_err_set(e, -EINVAL, "invalid reference \"%.128s\": %s", ref, why);
		return NULL;
	}
	char *out = NULL;
	bool has_tag = at || (colon && (!last_slash || colon > last_slash));
	if (asprintf(&out, "%s%s", ref, has_tag ? "" : ":latest") < 0) {
		ml_err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	return out;
}
