/* cli/args.h - GNU/cobra-style flag parsing: flags anywhere among positional args, `--` ends
 * flags, --flag=value / --flag value, combined short flags (-it), --bool=false. Error texts
 * match the reference CLI (`unknown flag: --foo`, `unknown shorthand flag: 'x' in -x`). */
#ifndef ML_CLI_ARGS_H
#define ML_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

enum flag_kind {
	FLAG_BOOL,
	FLAG_STRING,
	FLAG_STRING_ARRAY, /* repeatable, values kept whole */
	FLAG_STRING_LIST,  /* repeatable, each value split at commas */
	FLAG_INT,
	FLAG_FLOAT,
	FLAG_DURATION,     /* Go-style duration ("0s", "1.5s", "2m"), stored in ms */
};

struct strv {
	char **v; /* NULL-terminated (may be NULL when empty) */
	size_t n;
};
void strv_add(struct strv *s, const char *val); /* aborts only on OOM in main's caller path */
void strv_clear(struct strv *s);
#define _cleanup_strv_clear_ __attribute__((cleanup(strv_clear)))

struct flag {
	const char *name;   /* long name, without -- */
	char shorthand;     /* 0 = none */
	enum flag_kind kind;
	void *dst;          /* bool*, char**, struct strv*, long*, double*, long* (ms) */
	const char *usage;  /* one line for --help */
	const char *defval; /* shown in --help, NULL = none */
	bool later;         /* parses, then the command fails: "not supported yet" */
	bool set;           /* filled by the parser */
};

/* Parses argv (after the subcommand name). Positional args (and everything after `--`) go into
 * pos; *dashdash is the index in pos where `--` appeared, or -1. `-h/--help` sets *help.
 * Returns 0 or -EINVAL with the reference's message in e. */
int args_parse(struct flag *flags, int argc, char **argv, struct strv *pos, int *dashdash,
	       bool *help, struct ml_err *e);
/* args_parse for a subcommand: on -h/--help prints help_text, then "Flags:" and the flags,
 * and returns 1; else 0 or -EINVAL. */
int args_parse_cmd(struct flag *flags, int argc, char **argv, struct strv *pos,
		   const char *help_text, struct ml_err *e);
const struct flag *args_find(const struct flag *flags, const char *name);
/* Is s[0..n) one of the value types --help shows after a flag (int, string, ...)? */
bool args_is_type_name(const char *s, size_t n);
void args_print_flags(const struct flag *flags);

#endif
