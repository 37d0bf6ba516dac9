#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strv_add(struct strv *s, const char *val)
{
	char **n = realloc(s->v, (s->n + 2) * sizeof(char *));
	char *dup = strdup(val);
	if (!n || !dup)
		abort(); /* out of memory while parsing flags: nothing sensible left to do */
	n[s->n++] = dup;
	n[s->n] = NULL;
	s->v = n;
}

void strv_clear(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

const struct flag *args_find(const struct flag *flags, const char *name)
{
	for (const struct flag *f = flags; f->name; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

static struct flag *find_long(struct flag *flags, const char *name, size_t len)
{
	for (struct flag *f = flags; f->name; f++)
		if (strlen(f->name) == len && !strncmp(f->name, name, len))
			return f;
	return NULL;
}

static struct flag *find_short(struct flag *flags, char c)
{
	for (struct flag *f = flags; f->name; f++)
		if (f->shorthand == c)
			return f;
	return NULL;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *yes[] = { "1", "t", "T", "true", "TRUE", "True" };
	static const char *no[] = { "0", "f", "F", "false", "FALSE", "False" };
	for (size_t i = 0; i < 6; i++) {
		if (!strcmp(v, yes[i]))
			return *out = true, 0;
		if (!strcmp(v, no[i]))
			return *out = false, 0;
	}
	return -EINVAL;
}

/* Go's time.ParseDuration subset: a sequence of <number><unit>, units ns us ms s m h. */
static int parse_duration(const char *v, long *ms)
{
	double total = 0;
	const char *p = v;
	if (!strcmp(v, "0"))
		return *ms = 0, 0;
	while (*p) {
		char *end;
		double n = strtod(p, &end);
		if (end == p || n < 0)
			return -EINVAL;
		double unit;
		if (!strncmp(end, "ms", 2)) unit = 1, end += 2;
		else if (!strncmp(end, "us", 2)) unit = 0.001, end += 2;
		else if (!strncmp(end, "ns", 2)) unit = 0.000001, end += 2;
		else if (*end == 's') unit = 1000, end++;
		else if (*end == 'm') unit = 60000, end++;
		else if (*end == 'h') unit = 3600000, end++;
		else return -EINVAL;
		total += n * unit;
		p = end;
	}
	*ms = (long)total;
	return 0;
}

/* A list flag's value is CSV, as upstream's flag library reads it: fields split at commas,
 * and a field in double quotes may hold commas ("" is a quote), e.g. --secret
 * '"TOKEN=x@a.com,b.com"'. Empty fields are dropped. */
static void split_commas(struct strv *s, const char *v)
{
	char *field = malloc(strlen(v) + 1);
	if (!field)
		abort();
	if (!*v)
		strv_add(s, "");
	while (*v) {
		size_t n = 0;
		if (*v == '"') {
			for (v++; *v && !(*v == '"' && v[1] != '"'); v++) {
				if (*v == '"')
					v++;   /* "" */
				field[n++] = *v;
			}
			if (*v == '"')
				v++;
		}
		for (; *v && *v != ','; v++)
			field[n++] = *v;
		field[n] = '\0';
		if (n)
			strv_add(s, field);
		if (*v == ',')
			v++;
	}
	free(field);
}

static int set_value(struct flag *f, const char *v, const char *shown, struct ml_err *e)
{
	char *end = NULL;
	f->set = true;
	switch (f->kind) {
	case FLAG_BOOL:
		if (parse_bool(v, f->dst) < 0)
			return ml_err_set(e, -EINVAL, "invalid argument \"%s\" for \"%s\" flag: strconv.ParseBool: parsing \"%s\": invalid syntax", v, shown, v);
		return 0;
	case FLAG_STRING:
		free(*(char **)f->dst);
		*(char **)f->dst = strdup(v);
		return 0;
	case FLAG_STRING_ARRAY:
		strv_add(f->dst, v);
		return 0;
	case FLAG_STRING_LIST:
		split_commas(f->dst, v);
		return 0;
	case FLAG_INT: {
		errno = 0;
		long n = strtol(v, &end, 0);
		if (!*v || *end || errno)
			return ml_err_set(e, -EINVAL, "invalid argument \"%s\" for \"%s\" flag: strconv.ParseInt: parsing \"%s\": invalid syntax", v, shown, v);
		*(long *)f->dst = n;
		return 0;
	}
	case FLAG_FLOAT: {
		double d = strtod(v, &end);
		if (!*v || *end)
			return ml_err_set(e, -EINVAL, "invalid argument \"%s\" for \"%s\" flag: strconv.ParseFloat: parsing \"%s\": invalid syntax", v, shown, v);
		*(double *)f->dst = d;
		return 0;
	}
	case FLAG_DURATION:
		if (parse_duration(v, f->dst) < 0)
			return ml_err_set(e, -EINVAL, "invalid argument \"%s\" for \"%s\" flag: time: invalid duration \"%s\"", v, shown, v);
		return 0;
	}
	return -EINVAL;
}

static int parse_long(struct flag *flags, char **argv, int argc, int *i, bool *help, struct ml_err *e)
{
	const char *a = argv[*i] + 2, *eq = strchr(a, '=');
	size_t len = eq ? (size_t)(eq - a) : strlen(a);
	if (len == 4 && !strncmp(a, "help", 4))
		return *help = true, 0;
	struct flag *f = find_long(flags, a, len);
	if (!f)
		return ml_err_set(e, -EINVAL, "unknown flag: --%.*s", (int)len, a);
	char shown[96];
	snprintf(shown, sizeof(shown), "--%s", f->name);
	if (eq)
		return set_value(f, eq + 1, shown, e);
	if (f->kind == FLAG_BOOL)
		return set_value(f, "true", shown, e);
	if (*i + 1 >= argc)
		return ml_err_set(e, -EINVAL, "flag needs an argument: --%s", f->name);
	return set_value(f, argv[++*i], shown, e);
}

static int parse_short(struct flag *flags, char **argv, int argc, int *i, bool *help, struct ml_err *e)
{
	const char *a = argv[*i];
	for (const char *p = a + 1; *p; p++) {
		if (*p == 'h')
			return *help = true, 0;
		struct flag *f = find_short(flags, *p);
		if (!f)
			return ml_err_set(e, -EINVAL, "unknown shorthand flag: '%c' in %s", *p, a);
		char shown[96];
		snprintf(shown, sizeof(shown), "-%c, --%s", f->shorthand, f->name);
		if (f->kind == FLAG_BOOL) {
			if (p[1] == '=')
				return set_value(f, p + 2, shown, e);
			int r = set_value(f, "true", shown, e);
			if (r < 0)
				return r;
			continue;
		}
		if (p[1])
			return set_value(f, p[1] == '=' ? p + 2 : p + 1, shown, e);
		if (*i + 1 >= argc)
			return ml_err_set(e, -EINVAL, "flag needs an argument: '%c' in %s", *p, a);
		return set_value(f, argv[++*i], shown, e);
	}
	return 0;
}

int args_parse(struct flag *flags, int argc, char **argv, struct strv *pos, int *dashdash,
	       bool *help, struct ml_err *e)
{
	*dashdash = -1;
	*help = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		if (!strcmp(a, "--")) {
			*dashdash = (int)pos->n;
			for (i++; i < argc; i++)
				strv_add(pos, argv[i]);
			break;
		}
		if (a[0] == '-' && a[1] == '-')
			r = parse_long(flags, argv, argc, &i, help, e);
		else if (a[0] == '-' && a[1])
			r = parse_short(flags, argv, argc, &i, help, e);
		else
			strv_add(pos, a);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The value type --help shows after a flag's name (cobra's words); "" for a bool. */
static const char *const type_names[] = {
	[FLAG_BOOL] = "", [FLAG_STRING] = "string", [FLAG_STRING_ARRAY] = "stringArray",
	[FLAG_STRING_LIST] = "strings", [FLAG_INT] = "int", [FLAG_FLOAT] = "float", [FLAG_DURATION] = "duration",
};

bool args_is_type_name(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (type_names[i][0] && strlen(type_names[i]) == n && !strncmp(s, type_names[i], n))
			return true;
	return false;
}

void args_print_flags(const struct flag *flags)
{
	for (const struct flag *f = flags; f->name; f++) {
		char left[64];
		const char *type = type_names[f->kind];
		if (f->shorthand)
			snprintf(left, sizeof(left), "  -%c, --%s%s%s", f->shorthand, f->name, *type ? " " : "", type);
		else
			snprintf(left, sizeof(left), "      --%s%s%s", f->name, *type ? " " : "", type);
		printf("%-32s %s", left, f->usage);
		if (f->defval)
			printf(" (default %s)", f->defval);
		printf("\n");
	}
	printf("%-32s %s\n", "  -h, --help", "help for this command");
}

int args_parse_cmd(struct flag *flags, int argc, char **argv, struct strv *pos,
		   const char *help_text, struct ml_err *e)
{
	int dd;
	bool help;
	int r = args_parse(flags, argc, argv, pos, &dd, &help, e);
	if (r < 0 || !help)
		return r;
	printf("%s\nFlags:\n", help_text);
	args_print_flags(flags);
	return 1;
}
