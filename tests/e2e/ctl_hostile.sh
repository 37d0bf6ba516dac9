#!/bin/bash
# ctl_hostile: a VM whose PID 1 is a hostile agent (tests/guest/flood_agent.c, built here and
# put in a copy of the data dir) that takes one exec and then floods the control channel
# without ever reading. Replayed HELLOs (before the fix each was answered with a whole CONFIG:
# ~13x amplification into an unbounded queue) leave the supervisor's memory where it was and
# the exec completes; a 1-byte STDOUT flood is cut off at the output window with a clear error
# and a line in the VM log, its memory bounded until then.
. "$(dirname "$0")/../lib/harness.sh"
DATA=$T_TMP/data
cp -a "$ML_PREFIX/lib/matchlock" "$DATA"
if ! cc -static -O2 -std=gnu11 -D_GNU_SOURCE -DML_AGENT -I"$REPO" "$REPO/tests/guest/flood_agent.c" \
	"$REPO/agent/boot.c" "$REPO/agent/fsutil.c" "$REPO/agent/proto.c" "$REPO/base/err.c" \
	"$REPO/base/log.c" -o "$DATA/agent" 2>"$T_TMP/cc.err"; then
	fail "building the hostile agent: $(head -5 "$T_TMP/cc.err")"
	done_testing
	exit 1
fi
chmod -R a+rX "$DATA"
export ML_ENV="MATCHLOCK_DATA_DIR=$DATA"

# run_flood NAME ARGS...: runs the hostile exec with --rm=false in the background; samples the
# supervisor's peak RSS (VmHWM, KiB) until its output shows the flood is over (WANT in stdout
# or stderr), then stops it with SIGTERM. Sets PEAK, OUT, ERR, LOG (the VM log, complete once
# the supervisor has exited).
run_flood() {
	local name=$1 want=$2; shift 2
	OUT=$T_TMP/$name.out ERR=$T_TMP/$name.err PEAK=0
	ml_bg run --image "$ML_DEFAULT_IMAGE" --rm=false -- "$@" >"$OUT" 2>"$ERR"
	local v end=$(( $(date +%s) + 180 ))
	while kill -0 "$ML_PID" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$ML_PID/status" 2>/dev/null)
		[ -n "$v" ] && PEAK=$v
		grep -qs "$want" "$OUT" "$ERR" && break
		sleep 0.1
	done
	sleep 0.5
	v=$(awk '/^VmHWM:/ {print $2}' "/proc/$ML_PID/status" 2>/dev/null)
	[ -n "$v" ] && PEAK=$v
	kill -TERM "$ML_PID" 2>/dev/null
	wait "$ML_PID" 2>/dev/null
	LOG=$(cat "$ML_HOME"/.matchlock/vms/*/logs/vm.log 2>/dev/null)
	rm -rf "$ML_HOME"/.matchlock/vms/*
}

run_flood base survived hello 0
base=$PEAK
check_contains "a hostile agent that floods nothing: the exec completes" survived "$(cat "$OUT")"

run_flood hello survived hello 1000000
check_contains "1,000,000 replayed HELLOs: the exec still completes" survived "$(cat "$OUT")"
check_contains "the replays are counted in the VM log" "1000000 out-of-turn frames ignored" "$LOG"
check_contains "the VM log says HELLO came out of turn" "HELLO out of turn" "$LOG"
grow=$(( PEAK - base ))
if [ "$grow" -lt 16384 ]; then ok "1,000,000 replayed HELLOs: supervisor peak RSS $PEAK KiB, $base KiB without a flood"
else fail "1,000,000 replayed HELLOs grew the supervisor's peak RSS by $grow KiB (base $base KiB), wanted < 16 MiB"; fi
check_not_contains "no error for ignored replays" "rror" "$(cat "$ERR")"

run_flood stdout "overran" stdout
check_contains "1-byte STDOUT flood without reading: cut off at the window" \
	"guest overran its output window" "$(cat "$ERR")"
grep -v -e '^Sandbox ' -e '^  Connect: ' -e '^  Stop: ' "$ERR" >"$T_TMP/err.rest"
check_one_line "the flood's end is one line on stderr (besides --rm=false's banner)" "$T_TMP/err.rest"
check_contains "the VM log records why the channel ended" "guest control channel: guest overran its output window" "$LOG"
n=$(wc -c <"$OUT")
if [ "$n" -ge 262144 ]; then ok "the guest's output up to the window reached stdout ($n bytes)"; else fail "only $n bytes of the flood reached stdout, wanted >= 262144"; fi
grow=$(( PEAK - base ))
if [ "$grow" -lt 16384 ]; then ok "1-byte STDOUT flood: supervisor peak RSS $PEAK KiB, $base KiB without a flood"
else fail "the 1-byte STDOUT flood grew the supervisor's peak RSS by $grow KiB (base $base KiB), wanted < 16 MiB"; fi
check_no_qemu_left "no VM left"
done_testing
