#!/bin/sh
# tests/run-fuzz.sh SECONDS BIN... - a short run of each libFuzzer target; any crash, leak or
# sanitizer report fails (the fuzzer exits non-zero and leaves a crash-* file), and so does a
# target killed by a signal (named in the report).
# Every target starts with every signal at its default disposition (env --default-signal), as
# from a plain login shell: what the product relies on (SIGPIPE ignored, base/proc.h) must be
# set up by the binary itself, whatever shell or harness runs it.
set -u
secs=$1; shift
fails=0; passes=0
for f in "$@"; do
	n=$(basename "$f")
	dir=$(dirname "$f")/../fuzz-corpus/$n
	mkdir -p "$dir"
	seeds=tests/fuzz/corpus/$n
	[ -d "$seeds" ] || seeds=
	echo "== fuzz $n (${secs}s)"
	env --default-signal "$f" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="$dir/" "$dir" $seeds >"$dir.log" 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		tail -n 1 "$dir.log"; passes=$((passes + 1))
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
