/* cli/completion.c - `matchlock completion bash|zsh|fish`: prints the shell's completion script.
 * Each script only collects the words typed so far and runs `matchlock __complete` on them
 * (cli/complete.c); with no candidate it leaves the word to the shell's file names, which is
 * what a flag's value or the guest's command after `--` usually is. The scripts call the
 * matchlock the user typed (first word of the line), so a build-tree binary completes itself. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmds.h"

static const char bash_script[] =
	"# bash completion for matchlock (`matchlock completion bash`)\n"
	"_matchlock()\n"
	"{\n"
	"\t# words split at blanks only (COMP_WORDS also splits at = and :)\n"
	"\tlocal line=${COMP_LINE:0:COMP_POINT} words\n"
	"\tread -r -a words <<<\"$line\"\n"
	"\t[[ $line =~ [[:space:]]$ ]] && words+=(\"\")\n"
	"\t((${#words[@]} > 1)) || return 0\n"
	"\tlocal IFS=$'\\n'\n"
	"\tCOMPREPLY=($(\"${words[0]}\" __complete \"${words[@]:1}\" 2>/dev/null))\n"
	"\t# readline replaces only what follows the last : of the word (an image tag's)\n"
	"\tlocal cur=${words[-1]}\n"
	"\t[[ $COMP_WORDBREAKS == *:* && $cur == *:* ]] && COMPREPLY=(\"${COMPREPLY[@]#\"${cur%:*}:\"}\")\n"
	"}\n"
	"complete -o default -F _matchlock matchlock\n";

static const char zsh_script[] =
	"#compdef matchlock\n"
	"# zsh completion for matchlock (`matchlock completion zsh`)\n"
	"_matchlock()\n"
	"{\n"
	"\tlocal -a cands\n"
	"\tcands=(\"${(@f)$(\"${words[1]}\" __complete \"${(@)words[2,CURRENT]}\" 2>/dev/null)}\")\n"
	"\tcands=(${cands:#})\n"
	"\tif (( ${#cands} )); then\n"
	"\t\tcompadd -Q -- \"${cands[@]}\"\n"
	"\telse\n"
	"\t\t_files\n"
	"\tfi\n"
	"}\n"
	"if [ \"$funcstack[1]\" = \"_matchlock\" ]; then\n"
	"\t_matchlock \"$@\"\n"
	"else\n"
	"\tcompdef _matchlock matchlock\n"
	"fi\n";

static const char fish_script[] =
	"# fish completion for matchlock (`matchlock completion fish`)\n"
	"function __matchlock_candidates\n"
	"\tset -l words (commandline -opc)\n"
	"\t$words[1] __complete $words[2..-1] (commandline -ct) 2>/dev/null\n"
	"end\n"
	"complete -c matchlock -e\n"
	"complete -c matchlock -f -n 'test -n \"$(__matchlock_candidates)\"' -a '(__matchlock_candidates)'\n"
	"complete -c matchlock -F -n 'test -z \"$(__matchlock_candidates)\"'\n";

static const struct {
	const char *shell, *script, *load;
} shells[] = {
	{ "bash", bash_script,
	  "  source <(matchlock completion bash)\n\nFor every new session (needs the bash-completion package):\n"
	  "  matchlock completion bash > /etc/bash_completion.d/matchlock\n" },
	{ "fish", fish_script,
	  "  matchlock completion fish | source\n\nFor every new session:\n"
	  "  matchlock completion fish > ~/.config/fish/completions/matchlock.fish\n" },
	{ "zsh", zsh_script,
	  "  source <(matchlock completion zsh)\n\n(compinit must have run first). For every new session, save it as _matchlock\n"
	  "in a directory of $fpath:\n  matchlock completion zsh > \"${fpath[1]}/_matchlock\"\n" },
};

static const struct flag no_flags[] = { { NULL, 0, 0, NULL, NULL, NULL, false, false } };

static void completion_help(void)
{
	printf("Generate the autocompletion script for matchlock for the specified shell.\n"
	       "See each sub-command's help for details on how to use the generated script.\n\n"
	       "Usage:\n  matchlock completion [command]\n\nAvailable Commands:\n");
	for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++)
		printf("  %-10s  Generate the autocompletion script for %s\n", shells[i].shell, shells[i].shell);
	printf("\nFlags:\n");
	args_print_flags(no_flags);
}

int cmd_completion(int argc, char **argv, struct ml_err *e)
{
	if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))
		return completion_help(), 0;
	for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++) {
		if (strcmp(argv[0], shells[i].shell))
			continue;
		if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
			return printf("Generate the autocompletion script for %s.\n\nTo load completions in your current "
				      "shell session:\n%s\nUsage:\n  matchlock completion %s\n\nFlags:\n",
				      shells[i].shell, shells[i].load, shells[i].shell),
			       args_print_flags(no_flags), 0;
		if (argc > 1)
			return ml_err_set(e, -EINVAL, "unknown command \"%s\" for \"matchlock completion %s\"", argv[1],
					  shells[i].shell);
		return fputs(shells[i].script, stdout) == EOF ? ml_err_set(e, -EIO, "completion: writing the script failed") : 0;
	}
	if (!strcmp(argv[0], "powershell"))
		return ml_err_set(e, -ENOTSUP, "matchlock completion powershell is not supported yet");
	return ml_err_set(e, -EINVAL, "unknown command \"%s\" for \"matchlock completion\"", argv[0]);
}
