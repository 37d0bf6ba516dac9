#!/bin/sh
# tests/run-fuzz.sh SECONDS BIN... - a short run of each libFuzzer target; any crash, leak or
# sanitizer report fails (the fuzzer exits non-zero and leaves a crash-* file).
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
	if "$f" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="$dir/" "$dir" $seeds >"$dir.log" 2>&1; then
		tail -n 1 "$dir.log"; passes=$((passes + 1))
	else
		tail -n 30 "$dir.log"; echo "fuzz $n: FAILED (artifacts in $dir)"; fails=$((fails + 1))
	fi
done
echo "fuzz: $passes passed, $fails failed"
[ "$fails" = 0 ]
