#!/usr/bin/env bash
# The metrics' cost per record in instructions, not time (bench/README.md, "Metrics overhead").
#
# Runs bench/metrics_micro.py under valgrind's callgrind (apt-get install valgrind): the engine's
# per-record path over stub clients, metrics off and on, for two input sizes. The difference
# between the sizes cancels start-up; mode "none" (data preparation only) is subtracted; the
# cycle collector is off (one collection more or less would outweigh the metrics). The
# counts do not depend on other work on the machine, unlike timings.
#
#   bench/metrics_instructions.sh [SMALL LARGE]     # default 10000 30000 records
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-10000}
large=${2:-30000}
py=${PYTHON:-.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {  # kind mode records -> instructions
    PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1.$2.$3" \
        "$py" bench/metrics_micro.py --kinds "$1" --modes "$2" \
        --rounds 1 --repeat 1 --no-gc --records "$3" >/dev/null 2>"$out/log.$1.$2.$3"
    sed -n 's/^summary: //p' "$out/cg.$1.$2.$3"
}
echo "| scenario | mode | instructions per record | vs off |"
echo "|---|---|---:|---:|"
for kind in stateless count_by_key; do
    declare -A per=()
    for mode in none off on; do
        a=$(count "$kind" "$mode" "$small")
        b=$(count "$kind" "$mode" "$large")
        per[$mode]=$(( (b - a) / (large - small) ))
    done
    for mode in off on; do
        net=$(( per[$mode] - per[none] ))
        off=$(( per[off] - per[none] ))
        echo "| $kind | $mode | $net | $(awk -v a="$net" -v b="$off" 'BEGIN{printf "%+.2f %%", (a-b)*100/b}') |"
    done
    unset per
done
