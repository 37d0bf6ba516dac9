/* tests/unit/oci_ref_test.c - Docker-style reference parsing: Docker Hub defaults, library/,
 * registry hosts and ports, digests, and malformed references refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "oci/registry.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void expect(const char *in, const char *domain, const char *path, const char *tag,
		   const char *digest)
{
	struct oci_ref r;
	struct ml_err e = {0};
	int rc = oci_ref_parse(in, &r, &e);
	if (rc != 0)
		fail_msg("%s: %s", in, e.msg);
	assert_string_equal(r.domain, domain);
	assert_string_equal(r.path, path);
	if (tag)
		assert_string_equal(r.tag, tag);
	else
		assert_null(r.tag);
	if (digest)
		assert_string_equal(r.digest, digest);
	else
		assert_null(r.digest);
	oci_ref_clear(&r);
}

static void test_hub_defaults(void **state)
{
	(void)state;
	expect("alpine", "docker.io", "library/alpine", "latest", NULL);
	expect("alpine:3.19", "docker.io", "library/alpine", "3.19", NULL);
	expect("python:3.12-alpine", "docker.io", "library/python", "3.12-alpine", NULL);
	expect("team/tool", "docker.io", "team/tool", "latest", NULL);
	expect("docker.io/alpine", "docker.io", "library/alpine", "latest", NULL);
	expect("index.docker.io/library/alpine:1", "docker.io", "library/alpine", "1", NULL);
	expect("matchlock/default:latest", "docker.io", "matchlock/default", "latest", NULL);
}

static void test_registries(void **state)
{
	(void)state;
	expect("localhost/x", "localhost", "x", "latest", NULL);
	expect("localhost:5000/team/tool:1.2", "localhost:5000", "team/tool", "1.2", NULL);
	expect("ghcr.io/org/app", "ghcr.io", "org/app", "latest", NULL);
	expect("127.0.0.1:5055/test/busybox:1", "127.0.0.1:5055", "test/busybox", "1", NULL);
	expect("[::1]:5000/a/b:c", "[::1]:5000", "a/b", "c", NULL);
	expect("Registry.Example.com/a", "Registry.Example.com", "a", "latest", NULL);
	struct oci_ref r;
	assert_int_equal(oci_ref_parse("alpine", &r, NULL), 0);
	assert_string_equal(oci_ref_host(&r), "registry-1.docker.io");
	assert_string_equal(oci_ref_object(&r), "latest");
	oci_ref_clear(&r);
	assert_int_equal(oci_ref_parse("localhost:5000/a", &r, NULL), 0);
	assert_string_equal(oci_ref_host(&r), "localhost:5000");
	oci_ref_clear(&r);
}

static void test_digests(void **state)
{
	(void)state;
	expect("ghcr.io/org/app@sha256:" D64, "ghcr.io", "org/app", NULL, "sha256:" D64);
	expect("alpine:3@sha256:" D64, "docker.io", "library/alpine", "3", "sha256:" D64);
	struct oci_ref r;
	assert_int_equal(oci_ref_parse("alpine:3@sha256:" D64, &r, NULL), 0);
	assert_string_equal(oci_ref_object(&r), "sha256:" D64);
	oci_ref_clear(&r);
}

static void refused(const char *in, const char *why)
{
	struct oci_ref r;
	struct ml_err e = {0};
	assert_int_equal(oci_ref_parse(in, &r, &e), -EINVAL);
	if (!strstr(e.msg, "invalid reference \"") || !strstr(e.msg, why))
		fail_msg("%s: got \"%s\", wanted \"%s\"", in, e.msg, why);
}

static void test_malformed(void **state)
{
	(void)state;
	refused("", "empty");
	refused("Alpine", "lowercase");
	refused("alpine:", "tag must be");
	refused("alpine:-x", "tag must start");
	refused("alpine:a/b", "registry port");
	refused("alpine:a+b", "bad character in tag");
	refused("alpine@sha256:1234", "digest must be");
	refused("alpine@md5:" D64, "unsupported digest");
	refused("localhost:abc/x", "port");
	refused("localhost:5000/", "empty");
	refused("a//b", "empty path component");
	refused("a/b/", "empty path component");
	refused("-a", "start and end");
	refused("a..b", "separator");
	refused("a b", "bad character");
	refused("exa_mple.com/x", "registry host");
	char long_ref[1100];
	memset(long_ref, 'a', sizeof(long_ref) - 1);
	long_ref[sizeof(long_ref) - 1] = '\0';
	refused(long_ref, "too long");
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	refused(long_name, "too long");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hub_defaults),
		cmocka_unit_test(test_registries),
		cmocka_unit_test(test_digests),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
