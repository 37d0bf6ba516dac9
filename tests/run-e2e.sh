#!/bin/sh
# tests/run-e2e.sh - prepares the world (root) and runs every tests/e2e/*.sh, two at a time
# (each boots real VMs under TCG and a boot keeps one core busy), then prints one summary line.
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
# Root builds the world around matchlock (the unprivileged user, network namespaces); matchlock
# itself always runs as that user. A sudo user's `make test` comes back here through sudo.
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo env "E2E_TESTS=${E2E_TESTS:-}" "E2E_JOBS=${E2E_JOBS:-}" "ML_TEST_ROOT=${ML_TEST_ROOT:-}" \
			"MATCHLOCK_PY_SDK=${MATCHLOCK_PY_SDK:-}" "MATCHLOCK_TS_SDK=${MATCHLOCK_TS_SDK:-}" sh "$0" "$@"
	fi
	echo "run-e2e: needs root to create the unprivileged test user and the test network (run as root, or install sudo)" >&2
	exit 2
fi
ML_TEST_ROOT=${ML_TEST_ROOT:-/tmp/matchlock-test}
[ -n "$ML_TEST_ROOT" ] || ML_TEST_ROOT=/tmp/matchlock-test
export ML_TEST_ROOT
rm -rf "$ML_TEST_ROOT"
mkdir -p "$ML_TEST_ROOT/cache" "$ML_TEST_ROOT/logs"
chmod 0755 "$ML_TEST_ROOT"
id mltest >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mltest
chown mltest:mltest "$ML_TEST_ROOT/cache"
chmod 0700 "$ML_TEST_ROOT/cache"
make -s install PREFIX="$ML_TEST_ROOT/prefix" >/dev/null || exit 1

tests=${E2E_TESTS:-}
[ -n "$tests" ] || tests=$(ls tests/e2e/*.sh)
jobs=${E2E_JOBS:-}
[ -n "$jobs" ] || jobs=2
start=$(date +%s)
# Run in parallel, each test's output to its own log; xargs keeps $jobs running.
printf '%s\n' $tests | xargs -P "$jobs" -I{} sh -c \
	'n=$(basename {} .sh); s=$(date +%s); if bash {} >"$0/logs/$n.log" 2>&1; then r=PASS; else r=FAIL; fi; echo "$r $n $(( $(date +%s) - s ))s" >>"$0/logs/summary"' "$ML_TEST_ROOT"
pass=0; failn=0
for t in $tests; do
	n=$(basename "$t" .sh)
	cat "$ML_TEST_ROOT/logs/$n.log"
done
# Count checks, not files; a file that failed without failing a check (it crashed) counts once.
while read -r r n s; do
	echo "$r $n ($s)"
	p=$(grep -c '^ok - ' "$ML_TEST_ROOT/logs/$n.log")
	f=$(grep -c '^not ok - ' "$ML_TEST_ROOT/logs/$n.log")
	[ "$r" = FAIL ] && [ "$f" = 0 ] && f=1
	pass=$((pass + p)); failn=$((failn + f))
done <"$ML_TEST_ROOT/logs/summary"
# Processes of this run (their command lines name its root) must not outlive it.
left=$(ps -u mltest -o pid=,args= 2>/dev/null | grep -F "$ML_TEST_ROOT/" | grep -v grep)
if [ -n "$left" ]; then
	echo "run-e2e: processes of mltest outlived the tests:"; echo "$left"
	echo "$left" | awk '{print $1}' | xargs -r kill -9; failn=$((failn + 1))
fi
echo "e2e: $(( $(date +%s) - start ))s"
echo "$pass passed, $failn failed"
[ "$failn" = 0 ]
