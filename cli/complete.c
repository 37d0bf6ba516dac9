/* cli/complete.c - shell completion. `matchlock completion bash|zsh|fish` prints a small script
 * whose only logic is to ask `matchlock __complete WORD... CURRENT` for the candidates, one per
 * line (the shape cobra's scripts have, so the logic is written once, here).
 *
 * The candidates come from what the user can read: the command table, and each command's own
 * --help text (its "Flags:", "Available Commands:" and "Usage:" lines), captured in-process.
 * A new command, subcommand or flag therefore completes with no change to this file, and
 * completion cannot disagree with the help. Positional words complete where a usage line says
 * so: a literal word (`allow-list add`), a subcommand (`[command]`), a sandbox id (`<id>`,
 * `[<id>]`, `[vm-id]`) from the state directory, or an image (`<image>`, `<tag>`) from the image
 * store, which is also what `--image`'s value completes to. Everything else (other flags'
 * values, the guest command after `--`) prints nothing, and the scripts fall back to the
 * shell's file names. Completing never creates anything: no store, no state directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/strv.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "oci/oci.h"
#include "rpc/sandbox.h"
#include "rpc/vmstate.h"

#define HELP_MAX (64u << 10) /* a help text is a few KiB; more is not a help text */

/* What one --help text says, as NULL-terminated vectors. */
struct help {
	char **flags;       /* "--name" of every flag */
	char **value_flags; /* "--name" and "-x" of the flags that take a value */
	char **subs;        /* "Available Commands:" names */
	char **usage;       /* each "Usage:" line, from the word after "matchlock" */
};

static void help_clear(struct help *h)
{
	strv_free(h->flags);
	strv_free(h->value_flags);
	strv_free(h->subs);
	strv_free(h->usage);
	*h = (struct help){ 0 };
}

/* Runs c's --help (sub's, when given) with stdout on a memfd and returns the text, or NULL. */
static char *capture_help(const struct cli_command *c, const char *sub)
{
	_cleanup_close_ int mfd = memfd_create("matchlock-help", MFD_CLOEXEC);
	if (mfd < 0 || fflush(stdout) != 0)
		return NULL;
	_cleanup_close_ int saved = dup(STDOUT_FILENO);
	if (saved < 0 || dup2(mfd, STDOUT_FILENO) < 0)
		return NULL;
	char *argv[] = { (char *)(sub ? sub : "--help"), sub ? (char *)"--help" : NULL, NULL };
	struct ml_err e = { 0 };
	int r = c->fn(sub ? 2 : 1, argv, &e);
	fflush(stdout);
	if (dup2(saved, STDOUT_FILENO) < 0 || r < 0)
		return NULL;
	off_t len = lseek(mfd, 0, SEEK_END);
	if (len <= 0 || len > (off_t)HELP_MAX)
		return NULL;
	char *text = malloc((size_t)len + 1);
	if (!text || pread(mfd, text, (size_t)len, 0) != len)
		return free(text), NULL;
	text[len] = '\0';
	return text;
}

/* A "Flags:" line: `  -x, --name type   Usage` or `      --name   Usage` (cli/args.c). */
static int parse_flag_line(struct help *h, const char *l)
{
	char shorthand[3] = "";
	l += strspn(l, " ");
	if (l[0] == '-' && l[1] && l[1] != '-' && l[2] == ',') {
		snprintf(shorthand, sizeof(shorthand), "-%c", l[1]);
		l += 3 + strspn(l + 3, " ");
	}
	if (strncmp(l, "--", 2) != 0)
		return 0;
	size_t n = strcspn(l, " =");
	char name[64];
	if (n >= sizeof(name))
		return 0;
	snprintf(name, sizeof(name), "%.*s", (int)n, l);
	int r = strv_append(&h->flags, name);
	const char *t = l + n;
	if (r == 0 && t[0] == ' ' && t[1] != ' ' && args_is_type_name(t + 1, strcspn(t + 1, " "))) {
		r = strv_append(&h->value_flags, name);
		if (r == 0 && shorthand[0])
			r = strv_append(&h->value_flags, shorthand);
	}
	return r;
}

static int parse_help(const char *text, struct help *h)
{
	enum { NONE, USAGE, SUBS, FLAGS } sec = NONE;
	int r = 0;
	for (const char *l = text; *l && r == 0;) {
		size_t n = strcspn(l, "\n");
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), l);
		l += n + (l[n] == '\n');
		if (!line[0])
			sec = NONE;
		else if (!strcmp(line, "Usage:"))
			sec = USAGE;
		else if (!strcmp(line, "Available Commands:"))
			sec = SUBS;
		else if (!strcmp(line, "Flags:"))
			sec = FLAGS;
		else if (sec == USAGE && !strncmp(line, "  matchlock ", 12))
			r = strv_append(&h->usage, line + 12);
		else if (sec == SUBS && !strncmp(line, "  ", 2))
			line[2 + strcspn(line + 2, " ")] = '\0', r = strv_append(&h->subs, line + 2);
		else if (sec == FLAGS)
			r = parse_flag_line(h, line);
	}
	return r;
}

static int load_help(const struct cli_command *c, const char *sub, struct help *h)
{
	help_clear(h);
	_cleanup_free_ char *text = capture_help(c, sub);
	return text ? parse_help(text, h) : -EIO;
}

/* Does flag word w (`--name`, `-x`, combined `-dx`) leave its value to the next word? */
static bool takes_value(const struct help *h, const char *w)
{
	if (strchr(w, '='))
		return false;
	if (w[1] == '-')
		return strv_contains(h->value_flags, w);
	char last[3] = { '-', w[strlen(w) - 1], '\0' };
	return strv_contains(h->value_flags, last);
}

static void print_matching(const char *cand, const char *cur)
{
	if (!strncmp(cand, cur, strlen(cur)))
		printf("%s\n", cand);
}

static void print_ids(const char *cur)
{
	struct vm_record *v;
	size_t n;
	struct ml_err e = { 0 };
	if (vmstate_list(cli_settings()->state_dir, &v, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		print_matching(v[i].id, cur);
	vm_records_free(v, n);
}

static bool tag_listed_before(const struct oci_image_row *rows, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (!strcmp(rows[j].tag, rows[i].tag))
			return true;
	return false;
}

/* The store's tags; nothing when the user has no store yet (a TAB must not create one). */
static void print_images(const char *cur)
{
	_cleanup_free_ char *cache = ml_cache_dir();
	if (!cache || !oci_store_exists(cache))
		return;
	struct oci_store *s = NULL;
	struct oci_image_row *rows = NULL;
	size_t n = 0;
	struct ml_err e = { 0 };
	if (ml_store_open(&s, &e) == 0 && oci_list(s, &rows, &n, &e) == 0)
		for (size_t i = 0; i < n; i++)
			if (!tag_listed_before(rows, i)) /* a tag can be in both scopes */
				print_matching(rows[i].tag, cur);
	oci_rows_free(rows, n);
	oci_store_free(s);
}

static bool is_image_placeholder(const char *t)
{
	return !strcmp(t, "<image>") || !strcmp(t, "<tag>");
}

static bool is_id_placeholder(const char *t)
{
	return !strcmp(t, "<id>") || !strcmp(t, "[<id>]") || !strcmp(t, "[vm-id]") || !strcmp(t, "<id>...");
}

/* Word k of a usage line (after the command word), skipping [flags] and [--]; NULL past the end. */
static const char *usage_word(const char *line, size_t k, char *buf, size_t size)
{
	size_t i = 0;
	for (const char *p = line + strcspn(line, " "); *p;) {
		p += strspn(p, " ");
		size_t n = strcspn(p, " ");
		if (!n)
			break;
		snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
		p += n;
		if (!strcmp(buf, "[flags]") || !strcmp(buf, "[--]"))
			continue;
		if (i++ == k)
			return buf;
	}
	return NULL;
}

/* The candidates for positional word k (0 = the first after the command) given the words
 * typed before it (pos[1..k]): from every usage line whose literal words match them. */
static void print_positional(const struct help *h, char **pos, size_t k, const char *cur)
{
	for (char **u = h->usage; u && *u; u++) {
		char buf[128];
		bool match = true;
		for (size_t j = 0; j < k && match; j++) {
			const char *t = usage_word(*u, j, buf, sizeof(buf));
			match = t && (t[0] == '<' || t[0] == '[' || !strcmp(t, pos[j + 1]));
		}
		const char *t = match ? usage_word(*u, k, buf, sizeof(buf)) : NULL;
		if (!t)
			continue;
		if (!strcmp(t, "[command]"))
			for (char **s = h->subs; s && *s; s++)
				print_matching(*s, cur);
		else if (is_id_placeholder(t))
			print_ids(cur);
		else if (is_image_placeholder(t))
			print_images(cur);
		else if (t[0] != '<' && t[0] != '[')
			print_matching(t, cur);
	}
}

static void print_commands(const char *cur)
{
	size_t n;
	const struct cli_command *c = cli_commands(&n);
	for (size_t i = 0; i < n; i++)
		if (c[i].name[0] != '_')
			print_matching(c[i].name, cur);
	print_matching("help", cur);
	print_matching("version", cur);
}

/* Reads the words typed before the current one: the command, its subcommand (whose help then
 * replaces the command's), the positional words, skipping flags and their values. *value_of
 * is the flag whose value the current word is, if any. Returns false when the current word is
 * nobody's to complete: after `--`, or after an unknown command. */
static bool scan_words(int n, char **words, const struct cli_command **cmd, struct help *h, char ***pos,
		       const char **value_of)
{
	*value_of = NULL;
	for (int i = 0; i < n; i++) {
		const char *w = words[i];
		if (*value_of)
			*value_of = NULL;
		else if (!strcmp(w, "--"))
			return false; /* the guest's command follows */
		else if (w[0] == '-' && w[1])
			*value_of = *cmd && takes_value(h, w) ? w : NULL;
		else if (strv_append(pos, w) < 0)
			return false;
		else if (!*cmd && (!(*cmd = cli_command_find(w)) || load_help(*cmd, NULL, h) < 0))
			return false;
		else if (strv_len(*pos) == 2 && strv_contains(h->subs, w) && load_help(*cmd, w, h) < 0)
			return false;
	}
	return true;
}

int cmd_complete(int argc, char **argv, struct ml_err *e)
{
	(void)e;
	const struct cli_command *cmd = NULL;
	struct help h __attribute__((cleanup(help_clear))) = { 0 };
	_cleanup_strv_ char **pos = NULL;
	const char *value_of = NULL;
	if (argc < 1 || !scan_words(argc - 1, argv, &cmd, &h, &pos, &value_of))
		return 0; /* nothing printed: the shell offers file names */
	const char *cur = argv[argc - 1];
	if (value_of && !strcmp(value_of, "--image"))
		return print_images(cur), 0;
	if (value_of)
		return 0;
	if (strchr(cur, '='))
		return 0;
	if (!cmd && cur[0] == '-')
		return print_matching("--help", cur), print_matching("--version", cur), 0;
	if (!cmd)
		return print_commands(cur), 0;
	if (cur[0] == '-') {
		for (char **f = h.flags; f && *f; f++)
			print_matching(*f, cur);
		if (!strv_contains(h.flags, "--help")) /* a command group's help lists no flags */
			print_matching("--help", cur);
		return 0;
	}
	print_positional(&h, pos, strv_len(pos) - 1, cur);
	return 0;
}
