/* tests/unit/oci_registry_test.c - the parts of the registry client that read hostile input or
 * make security decisions: WWW-Authenticate challenges, platform selection from an index,
 * manifests, docker config.json credentials, and when plain HTTP is allowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry.h"

#define D(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define DA D("a")
#define DB D("b")
#define DC D("c")

static void test_bearer_challenge(void **state)
{
	(void)state;
	struct www_auth a;
	assert_int_equal(www_auth_parse("Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
					"scope=\"repository:library/alpine:pull\"", &a, NULL), 0);
	assert_int_equal(a.scheme, AUTH_BEARER);
	assert_string_equal(a.realm, "https://auth.example/token");
	assert_string_equal(a.service, "registry.example");
	assert_string_equal(a.scope, "repository:library/alpine:pull");
	www_auth_clear(&a);
	assert_int_equal(www_auth_parse("bearer realm=http://127.0.0.1:9/t, error=\"x\"", &a, NULL), 0);
	assert_string_equal(a.realm, "http://127.0.0.1:9/t");
	assert_null(a.service);
	www_auth_clear(&a);
	assert_int_equal(www_auth_parse("Bearer realm=\"https://a/t\\\"x\"", &a, NULL), 0);
	assert_string_equal(a.realm, "https://a/t\"x");
	www_auth_clear(&a);
}

static void test_basic_and_bad_challenges(void **state)
{
	(void)state;
	struct www_auth a;
	assert_int_equal(www_auth_parse("Basic realm=\"Registry Realm\"", &a, NULL), 0);
	assert_int_equal(a.scheme, AUTH_BASIC);
	www_auth_clear(&a);
	struct ml_err e = {0};
	assert_true(www_auth_parse("Negotiate", &a, &e) < 0);
	assert_non_null(strstr(e.msg, "unsupported authentication scheme"));
	assert_true(www_auth_parse("Bearer service=x", &a, NULL) < 0);          /* no realm */
	assert_true(www_auth_parse("Bearer realm=\"file:///etc/passwd\"", &a, NULL) < 0);
	assert_true(www_auth_parse("Bearer realm=\"https://x\r\nInjected: 1\"", &a, NULL) < 0);
	assert_true(www_auth_parse("Bearer realm=\"unterminated", &a, NULL) < 0);
	assert_true(www_auth_parse(NULL, &a, NULL) < 0);
}

static const char INDEX[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
	"{\"digest\":\"" DA "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
	"{\"digest\":\"" DB "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v3\"}},"
	"{\"digest\":\"" DC "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	"{\"digest\":\"" DA "\",\"size\":1,\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}";

static void test_index_pick(void **state)
{
	(void)state;
	char d[72];
	bool index = false;
	assert_int_equal(manifest_is_index(INDEX, strlen(INDEX), NULL, &index, NULL), 0);
	assert_true(index);
	assert_int_equal(index_pick(INDEX, strlen(INDEX), d, NULL), 0);
	assert_string_equal(d, DC); /* no variant beats v3 */
	const char *v3 = "{\"manifests\":[{\"digest\":\"" DB "\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v3\"}},"
			 "{\"digest\":\"" DA "\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v2\"}}]}";
	assert_int_equal(index_pick(v3, strlen(v3), d, NULL), 0);
	assert_string_equal(d, DA);
	const char *none = "{\"manifests\":[{\"digest\":\"" DA "\",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
			   "{\"digest\":\"" DB "\",\"platform\":{\"os\":\"windows\",\"architecture\":\"amd64\"}}]}";
	struct ml_err e = {0};
	assert_int_equal(index_pick(none, strlen(none), d, &e), -ENOENT);
	assert_string_equal(e.msg, "no matching manifest for linux/amd64 in the manifest list entries");
	const char *bad = "{\"manifests\":[{\"digest\":\"sha256:zz\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	assert_true(index_pick(bad, strlen(bad), d, NULL) < 0);
}

static void test_manifest_parse(void **state)
{
	(void)state;
	const char *m = "{\"schemaVersion\":2,\"mediaType\":\"" MT_DOCKER_MANIFEST "\",\"config\":{\"digest\":\"" DA "\",\"size\":10},"
			"\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"" DB "\",\"size\":5},"
			"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" DC "\",\"size\":7}]}";
	struct manifest mf;
	bool index = true;
	assert_int_equal(manifest_is_index(m, strlen(m), NULL, &index, NULL), 0);
	assert_false(index);
	assert_int_equal(manifest_parse(m, strlen(m), &mf, NULL), 0);
	assert_int_equal(mf.n_layers, 2);
	assert_string_equal(mf.config.digest, DA);
	assert_int_equal(mf.layers[1].size, 7);
	manifest_clear(&mf);
	const char *neg = "{\"config\":{\"digest\":\"" DA "\",\"size\":-1},\"layers\":[]}";
	assert_true(manifest_parse(neg, strlen(neg), &mf, NULL) < 0);
	const char *foreign = "{\"config\":{\"digest\":\"" DA "\",\"size\":1},\"layers\":[{\"mediaType\":\"application/x-exe\",\"digest\":\"" DB "\",\"size\":1}]}";
	assert_int_equal(manifest_parse(foreign, strlen(foreign), &mf, NULL), -ENOTSUP);
	const char *v1 = "{\"schemaVersion\":1,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}";
	assert_int_equal(manifest_is_index(v1, strlen(v1), NULL, &index, NULL), -ENOTSUP);
	assert_true(manifest_is_index("[1]", 3, NULL, &index, NULL) < 0);
	assert_true(manifest_is_index("{", 1, NULL, &index, NULL) < 0);
}

static void test_docker_config(void **state)
{
	(void)state;
	const char *cfg = "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"aHViOnNlY3JldA==\"},"
			  "\"localhost:5000\":{\"auth\":\"dXNlcjpwYXNz\"},"
			  "\"http://reg.example:8443/v2/\":{\"username\":\"u\",\"password\":\"p\"},"
			  "\"evil.example\":{\"auth\":\"abc\\r\\nX: y\"}}}";
	char *b = NULL;
	assert_int_equal(docker_auth_find(cfg, strlen(cfg), "docker.io", &b, NULL), 0);
	assert_string_equal(b, "aHViOnNlY3JldA==");
	free(b);
	assert_int_equal(docker_auth_find(cfg, strlen(cfg), "localhost:5000", &b, NULL), 0);
	assert_string_equal(b, "dXNlcjpwYXNz");
	free(b);
	assert_int_equal(docker_auth_find(cfg, strlen(cfg), "reg.example:8443", &b, NULL), 0);
	assert_string_equal(b, "dTpw"); /* base64("u:p") */
	free(b);
	assert_int_equal(docker_auth_find(cfg, strlen(cfg), "localhost:5001", &b, NULL), 0);
	assert_null(b);
	assert_true(docker_auth_find(cfg, strlen(cfg), "evil.example", &b, NULL) < 0);
	assert_null(b);
	assert_true(docker_auth_find("{", 1, "x", &b, NULL) < 0);
	assert_int_equal(docker_auth_find("{}", 2, "x", &b, NULL), 0);
	assert_null(b);
}

static void test_plain_http(void **state)
{
	(void)state;
	assert_true(registry_plain_http_ok("localhost:5000", NULL));
	assert_true(registry_plain_http_ok("localhost", NULL));
	assert_true(registry_plain_http_ok("127.0.0.1:5055", NULL));
	assert_true(registry_plain_http_ok("127.8.9.10", NULL));
	assert_true(registry_plain_http_ok("[::1]:5000", NULL));
	assert_false(registry_plain_http_ok("docker.io", NULL));
	assert_false(registry_plain_http_ok("128.0.0.1:5000", NULL));
	assert_false(registry_plain_http_ok("localhost.evil.com", NULL));
	assert_false(registry_plain_http_ok("127.0.0.1.nip.io", NULL));
	assert_true(registry_plain_http_ok("reg.lan:5000", "other, reg.lan:5000"));
	assert_true(registry_plain_http_ok("reg.lan:5000", "reg.lan"));
	assert_false(registry_plain_http_ok("reg.lan:5001", "reg.lan:5000"));
	assert_false(registry_plain_http_ok("reg.lan", "reg.lan:5000"));
	assert_false(registry_plain_http_ok("reg.lan", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer_challenge),
		cmocka_unit_test(test_basic_and_bad_challenges),
		cmocka_unit_test(test_index_pick),
		cmocka_unit_test(test_manifest_parse),
		cmocka_unit_test(test_docker_config),
		cmocka_unit_test(test_plain_http),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
