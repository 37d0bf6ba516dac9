#!/bin/sh
# tests/run-fuzz.sh SECONDS BIN...      - a short run of each libFuzzer target (make fuzz-run)
# tests/run-fuzz.sh --runs N BIN...     - N executions of each, one after another (make fuzz-long)
# Any crash, leak or sanitizer report fails (the fuzzer exits non-zero and leaves a crash-* file),
# and so does a target killed by a signal (named in the report). Each target's line says how
# many inputs it ran and how long that took.
# Every target starts with every signal at its default disposition (env --default-signal), as
# from a plain login shell: what the product relies on (SIGPIPE ignored, base/proc.h) must be
# set up by the binary itself, whatever shell or harness runs it.
set -u
if [ "$1" = --runs ]; then
	limit="-runs=$2"; what="$2 runs"; shift 2
else
	limit="-max_total_time=$1"; what="${1}s"; shift
fi
# Targets that build a network stack or an image per input make a directory and bind a socket
# each time: on a tmpfs that is 2-3x faster than on a disk (more inputs per second).
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	TMPDIR=$(mktemp -d /dev/shm/matchlock-fuzz.XXXXXX) && export TMPDIR && trap 'rm -rf "$TMPDIR"' EXIT
fi
fails=0; passes=0
for f in "$@"; do
	n=$(basename "$f")
	dir=$(dirname "$f")/../fuzz-corpus/$n
	mkdir -p "$dir"
	seeds=tests/fuzz/corpus/$n
	[ -d "$seeds" ] || seeds=
	echo "== fuzz $n ($what)"
	start=$(date +%s)
	env --default-signal "$f" "$limit" -print_final_stats=0 -artifact_prefix="$dir/" "$dir" $seeds >"$dir.log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ "$rc" = 0 ]; then
		runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$dir.log" | tail -n 1)
		echo "fuzz $n: ${runs:-?} runs in ${secs}s, no crash"; passes=$((passes + 1))
		continue
	fi
	tail -n 30 "$dir.log"
	if [ "$rc" -gt 128 ]; then
		echo "fuzz $n: FAILED: killed by signal $((rc - 128)) (SIG$(kill -l $((rc - 128)) 2>/dev/null)), exit $rc"
	else
		echo "fuzz $n: FAILED: exit $rc (artifacts in $dir)"
	fi
	fails=$((fails + 1))
done
echo "fuzz: $passes passed, $fails failed"
[ "$fails" = 0 ]
