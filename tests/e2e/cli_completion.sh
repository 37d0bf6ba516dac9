#!/bin/bash
# cli_completion: `matchlock completion bash|zsh|fish` loaded into the real shells (as the
# unprivileged user), and the candidates each one offers: commands, subcommands, flags, no
# candidate for a flag's value or after `--` (the shell's file names then). No VM boots here;
# completing sandbox ids is checked in vm_cli.sh, where VMs exist. zsh and fish are test
# dependencies (scripts/setup.sh); without them their part says it skipped.
. "$(dirname "$0")/../lib/harness.sh"

# in_shell SHELL SCRIPT: SHELL -c SCRIPT as the test user, with matchlock first in PATH
in_shell() {
	# shellcheck disable=SC2086
	setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH="$ML_PREFIX/bin:/usr/local/bin:/usr/bin:/bin" HOME="$ML_HOME" \
		XDG_CACHE_HOME="$ML_CACHE" ${ML_ENV:-} "$1" -c "$2" 2>&1
}

# A store of this file's own: image candidates must not see other files' images, and the first
# checks need no store at all.
private_cache cache

# --- the command itself
out=$(ml completion); rc=$?
check_eq "completion without a shell: help, exit 0" 0 "$rc"
for s in bash fish zsh; do check_contains "completion help lists $s" "  $s " "$out"; done
check_contains "root help lists completion" "  completion " "$(ml --help)"
check_contains "completion bash --help says how to load it" "source <(matchlock completion bash)" "$(ml completion bash --help)"
ml completion tcsh >"$T_TMP/out" 2>"$T_TMP/err"; rc=$?
check_eq "completion tcsh: exit 1, nothing on stdout" "1 " "$rc $(cat "$T_TMP/out")"
check_eq "completion tcsh: the message" 'unknown command "tcsh" for "matchlock completion"' "$(cat "$T_TMP/err")"
ml completion powershell 2>"$T_TMP/err" >/dev/null
check_eq "completion powershell: said plainly" "matchlock completion powershell is not supported yet" "$(cat "$T_TMP/err")"
check_not_contains "__complete is hidden from the command list" "__complete" "$(ml __complete "")"

# --- bash: drive the completion function as readline would (COMP_LINE up to the cursor)
bash_c() { in_shell bash "source <(matchlock completion bash) || exit 9
	COMP_LINE='$1'; COMP_POINT=\${#COMP_LINE}; _matchlock; echo \"\${COMPREPLY[*]}\""; }
check_eq "bash: registered with file names as the fallback" "complete -o default -F _matchlock matchlock" \
	"$(in_shell bash 'source <(matchlock completion bash); complete -p matchlock')"
check_eq "bash: a command" "exec" "$(bash_c 'matchlock ex')"
out=$(bash_c 'matchlock ')
for c in run exec list kill rm gc log pull image volume rpc diagnose completion version; do
	check_contains "bash: the command list has $c" " $c " " $out "
done
check_eq "bash: image's subcommands, from its help" "import ls rm gc" "$(bash_c 'matchlock image ')"
check_eq "bash: volume's subcommands" "create ls rm cp" "$(bash_c 'matchlock volume ')"
check_eq "bash: allow-list's words, from its usage lines" "add delete" "$(bash_c 'matchlock allow-list ')"
check_eq "bash: completion's shells" "bash fish zsh" "$(bash_c 'matchlock completion ')"
check_eq "bash: a flag of exec" "--workdir" "$(bash_c 'matchlock exec --wo')"
check_eq "bash: a flag after a flag's value" "--mtu --memory" "$(bash_c 'matchlock run --image alpine --m')"
check_eq "bash: a subcommand's own flags" "--size" "$(bash_c 'matchlock volume create --s')"
check_eq "bash: an alias's flags" "--running" "$(bash_c 'matchlock ls --r')"
check_eq "bash: nothing for a flag's value (file names)" "" "$(bash_c 'matchlock run --image ')"
check_eq "bash: nothing for a short flag's value" "" "$(bash_c 'matchlock exec -w ')"
check_eq "bash: nothing after -- (the guest command)" "" "$(bash_c 'matchlock run --image alpine -- ec')"
check_eq "bash: nothing for --flag=value" "" "$(bash_c 'matchlock run --image=al')"
check_eq "bash: nothing for an unknown command" "" "$(bash_c 'matchlock frobnicate --')"
check_eq "bash: root flags" "--help --version" "$(bash_c 'matchlock --')"

# --- zsh: the real compinit and compdef; compadd and _files stand in for the line editor
if command -v zsh >/dev/null; then
	zc() { in_shell zsh "autoload -U compinit && compinit -u -d \$HOME/.zcompdump
		source <(matchlock completion zsh) || exit 9
		[[ \${_comps[matchlock]} == _matchlock ]] || { print not registered; exit 8; }
		compadd() { print -r -- \"\${@[3,-1]}\"; }; _files() { print FILES; }
		words=($1); CURRENT=\${#words}; _matchlock"; }
	check_eq "zsh: a command" "exec" "$(zc "matchlock ex")"
	check_eq "zsh: image's subcommands" "import ls rm gc" "$(zc "matchlock image ''")"
	check_eq "zsh: a flag" "--workdir" "$(zc "matchlock exec --wo")"
	check_eq "zsh: file names for a flag's value" "FILES" "$(zc "matchlock run --image ''")"
else
	echo "# skip cli_completion: zsh is not installed (scripts/setup.sh installs it): its checks were not run"
fi

# --- fish: its own `complete -C` asks the loaded completions for a command line
if command -v fish >/dev/null; then
	fc() { in_shell fish "matchlock completion fish | source; complete -C'$1'" | cut -f1 | tr '\n' ' ' | sed 's/ $//'; }
	check_eq "fish: a command" "exec" "$(fc 'matchlock ex')"
	check_eq "fish: image's subcommands" "gc import ls rm" "$(fc 'matchlock image ')"
	check_eq "fish: a flag" "--workdir" "$(fc 'matchlock exec --wo')"
	mkdir -p "$T_TMP/fdir/sub" && chmod -R a+rx "$T_TMP/fdir"
	check_eq "fish: file names for a flag's value" "$T_TMP/fdir/sub/" "$(fc "matchlock run --image $T_TMP/fdir/s")"
else
	echo "# skip cli_completion: fish is not installed (scripts/setup.sh installs it): its checks were not run"
fi

# --- image names, from the store: --image's value and the <image>/<tag> words
check_eq "no store: no candidate for --image (file names)" "" "$(bash_c 'matchlock run --image ')"
check_eq "completing created no store" "" "$(ls -A "$ML_CACHE")"
for t in test/alpha:1 test/beta:2; do
	ml image import "$t" "$ML_PREFIX/lib/matchlock/images/default.tar" >/dev/null 2>"$T_TMP/err" ||
		fail "image import $t: $(cat "$T_TMP/err")"
done
sorted() { tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//'; }
check_eq "bash: --image's value, from the store" "test/alpha:1 test/beta:2" "$(bash_c 'matchlock run --image test/' | sorted)"
check_eq "bash: a tag after its colon (readline replaces only that part)" "1" "$(bash_c 'matchlock run --image test/alpha:')"
check_eq "bash: image rm <tag>" "test/beta:2" "$(bash_c 'matchlock image rm test/b')"
check_eq "bash: pull <image>" "test/alpha:1" "$(bash_c 'matchlock pull test/a')"
check_eq "bash: nothing for another flag's value" "" "$(bash_c 'matchlock run --cpus ')"
if command -v zsh >/dev/null; then
	check_eq "zsh: --image's value, whole tag" "test/alpha:1" "$(zc "matchlock run --image test/al")"
fi
if command -v fish >/dev/null; then
	check_eq "fish: --image's value" "test/beta:2" "$(fc 'matchlock run --image test/b')"
fi

done_testing
