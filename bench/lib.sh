# bench/lib.sh - sourced by bench/run.sh and bench/pull.sh: the work dir, the binary, and the
# helpers that print each figure beside its same-run baseline.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
ML=$REPO/build/bin/matchlock
IMG=matchlock/default:latest
W=$(mktemp -d /tmp/matchlock-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
export HOME=$W/home XDG_CACHE_HOME=
mkdir -p "$HOME"
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
row() { printf '%-34s ours %-12s baseline %-12s (%s)  ratio %s  goal %s\n' "$1" "$2" "$3" "$4" "$5" "$6"; }
