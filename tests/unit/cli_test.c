/* tests/unit/cli_test.c - the flag parser and the spec-string parsers behave like the
 * reference CLI: interspersed flags, `--`, combined shorthands, bool=false, exact messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/args.h"
#include "cli/specs.h"

struct opts {
	char *image;
	struct strv env, list;
	bool tty, inter, rm;
	long mem, dur;
	double cpus;
};

static struct flag *table(struct opts *o)
{
	static struct flag t[9];
	struct flag tmp[] = {
		{ "image", 0, FLAG_STRING, &o->image, "", NULL, false, false },
		{ "env", 'e', FLAG_STRING_ARRAY, &o->env, "", NULL, false, false },
		{ "dns-servers", 0, FLAG_STRING_LIST, &o->list, "", NULL, false, false },
		{ "tty", 't', FLAG_BOOL, &o->tty, "", NULL, false, false },
		{ "interactive", 'i', FLAG_BOOL, &o->inter, "", NULL, false, false },
		{ "rm", 0, FLAG_BOOL, &o->rm, "", NULL, false, false },
		{ "memory", 0, FLAG_INT, &o->mem, "", NULL, false, false },
		{ "graceful-shutdown", 0, FLAG_DURATION, &o->dur, "", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	memcpy(t, tmp, sizeof(tmp));
	return t;
}

static void done(struct opts *o, struct strv *pos)
{
	free(o->image);
	strv_clear(&o->env);
	strv_clear(&o->list);
	strv_clear(pos);
}

/* Each parse starts from empty options (the caller frees with done()). */
static int parse(struct opts *o, struct strv *pos, int *dd, struct ml_err *e, int argc, char **argv)
{
	bool help;
	memset(o, 0, sizeof(*o));
	o->rm = true;
	memset(pos, 0, sizeof(*pos));
	return args_parse(table(o), argc, argv, pos, dd, &help, e);
}

static void interspersed_flags_and_dashdash(void **state)
{
	(void)state;
	struct opts o;
	struct strv pos;
	struct ml_err e = { 0 };
	int dd;
	char *argv[] = { "echo", "--image", "alpine", "hi", "--", "-x", "--image" };
	assert_int_equal(parse(&o, &pos, &dd, &e, 7, argv), 0);
	assert_string_equal(o.image, "alpine");
	assert_int_equal(pos.n, 4);
	assert_string_equal(pos.v[0], "echo");
	assert_string_equal(pos.v[2], "-x");
	assert_string_equal(pos.v[3], "--image");
	assert_int_equal(dd, 2);
	done(&o, &pos);
}

static void shorthands_bools_and_values(void **state)
{
	(void)state;
	struct opts o;
	struct strv pos;
	struct ml_err e = { 0 };
	int dd;
	char *argv[] = { "-it", "--rm=false", "-eA=1", "-e", "B=2", "--memory=256", "--dns-servers", "1.1.1.1,1.0.0.1", "--graceful-shutdown", "1.5s" };
	assert_int_equal(parse(&o, &pos, &dd, &e, 10, argv), 0);
	assert_true(o.tty && o.inter);
	assert_false(o.rm);
	assert_int_equal(o.env.n, 2);
	assert_string_equal(o.env.v[0], "A=1");
	assert_int_equal(o.mem, 256);
	assert_int_equal(o.list.n, 2);
	assert_string_equal(o.list.v[1], "1.0.0.1");
	assert_int_equal(o.dur, 1500);
	done(&o, &pos);
}

static void errors_use_the_reference_wording(void **state)
{
	(void)state;
	struct opts o;
	struct strv pos;
	struct ml_err e = { 0 };
	int dd;
	char *a1[] = { "--foo" };
	assert_int_equal(parse(&o, &pos, &dd, &e, 1, a1), -EINVAL);
	done(&o, &pos);
	assert_string_equal(e.msg, "unknown flag: --foo");
	char *a2[] = { "-la" };
	assert_int_equal(parse(&o, &pos, &dd, &e, 1, a2), -EINVAL);
	done(&o, &pos);
	assert_string_equal(e.msg, "unknown shorthand flag: 'l' in -la");
	char *a3[] = { "--memory", "lots" };
	assert_int_equal(parse(&o, &pos, &dd, &e, 2, a3), -EINVAL);
	done(&o, &pos);
	assert_non_null(strstr(e.msg, "invalid argument \"lots\" for \"--memory\" flag"));
	char *a4[] = { "--image" };
	assert_int_equal(parse(&o, &pos, &dd, &e, 1, a4), -EINVAL);
	done(&o, &pos);
	assert_string_equal(e.msg, "flag needs an argument: --image");
	char *a5[] = { "--rm=maybe" };
	assert_int_equal(parse(&o, &pos, &dd, &e, 1, a5), -EINVAL);
	done(&o, &pos);
}

static void env_specs(void **state)
{
	(void)state;
	struct strv files = { 0 }, flags = { 0 }, out = { 0 };
	struct ml_err e = { 0 };
	setenv("CLI_TEST_HOST", "from-host", 1);
	unsetenv("CLI_TEST_MISSING");
	strv_add(&flags, "A=1");
	strv_add(&flags, " B =x=y");
	strv_add(&flags, "CLI_TEST_HOST");
	strv_add(&flags, "A=2");
	assert_int_equal(specs_env(&files, &flags, &out, &e), 0);
	assert_int_equal(out.n, 3);
	assert_string_equal(out.v[0], "A=2");
	assert_string_equal(out.v[1], "B=x=y");
	assert_string_equal(out.v[2], "CLI_TEST_HOST=from-host");
	struct strv bad = { 0 }, out2 = { 0 };
	strv_add(&bad, "CLI_TEST_MISSING");
	assert_int_equal(specs_env(&files, &bad, &out2, &e), -EINVAL);
	assert_string_equal(e.msg, "invalid environment variable: environment variable is not set $CLI_TEST_MISSING");
	strv_clear(&flags);
	strv_clear(&out);
	strv_clear(&bad);
	strv_clear(&out2);
}

static void add_host_and_publish_specs(void **state)
{
	(void)state;
	struct ml_err e = { 0 };
	char *line = NULL;
	assert_int_equal(specs_add_host("api.internal:10.0.0.10", &line, &e), 0);
	assert_string_equal(line, "10.0.0.10 api.internal");
	free(line);
	assert_int_equal(specs_add_host("v6:0:0:0:0:0:0:0:1", &line, &e), 0);
	assert_string_equal(line, "::1 v6");
	free(line);
	assert_int_equal(specs_add_host("invalid-spec", &line, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "invalid add-host mapping: invalid add-host format"));
	assert_int_equal(specs_add_host("h:300.1.1.1", &line, &e), -EINVAL);
	int l, r;
	assert_int_equal(specs_publish("8080", &l, &r, &e), 0);
	assert_int_equal(l, 8080);
	assert_int_equal(r, 8080);
	assert_int_equal(specs_publish("18080:80", &l, &r, &e), 0);
	assert_int_equal(l, 18080);
	assert_int_equal(r, 80);
	assert_int_equal(specs_publish("0", &l, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "must be in range 1-65535"));
	assert_int_equal(specs_publish("1:2:3", &l, &r, &e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(interspersed_flags_and_dashdash),
		cmocka_unit_test(shorthands_bools_and_values),
		cmocka_unit_test(errors_use_the_reference_wording),
		cmocka_unit_test(env_specs),
		cmocka_unit_test(add_host_and_publish_specs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
