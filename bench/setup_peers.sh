#!/usr/bin/env bash
# Create the peer-framework virtualenvs used by bench/run.py (idempotent).
#
#   bench/.venvs/quix   quixstreams (pins its own confluent-kafka, hence a separate venv)
#   bench/.venvs/faust  faust-streaming (asyncio + aiokafka)
#
# A venv is (re)built only when its marker import fails, so re-running is cheap.
# Override the base interpreter with BENCH_PYTHON=/path/to/python3.x and the package specs
# with QUIX_SPEC / FAUST_SPEC (e.g. QUIX_SPEC='quixstreams==3.28.1').
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venvs="$here/.venvs"

base_python="${BENCH_PYTHON:-}"
if [[ -z "$base_python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then
        # Same interpreter version as streamflow's own venv, so the comparison is fair.
        base_python="$("$root/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
    else
        base_python="$(command -v python3)"
    fi
fi

quix_spec="${QUIX_SPEC:-quixstreams}"
faust_spec="${FAUST_SPEC:-faust-streaming}"

# ensure_venv NAME IMPORT_CHECK PIP_SPEC...
ensure_venv() {
    local name="$1" check="$2"
    shift 2
    local dir="$venvs/$name"
    if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "bench: $name venv ready ($("$dir/bin/python" -c "$check" 2>/dev/null))"
        return 0
    fi
    echo "bench: creating $dir with $base_python"
    rm -rf "$dir"
    mkdir -p "$venvs"
    "$base_python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$@"
    echo "bench: $name venv ready ($("$dir/bin/python" -c "$check"))"
}

ensure_venv quix \
    'import importlib.metadata as m; print("quixstreams", m.version("quixstreams"), "confluent-kafka", m.version("confluent-kafka"))' \
    "$quix_spec" orjson psutil
ensure_venv faust \
    'import importlib.metadata as m; import faust; print("faust-streaming", m.version("faust-streaming"), "aiokafka", m.version("aiokafka"))' \
    "$faust_spec" orjson psutil
