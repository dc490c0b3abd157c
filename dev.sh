#!/usr/bin/env bash
# Quick start: ./dev.sh demo | test | ui | <any command run inside the environment>
# Creates .venv (Python >= 3.11) and installs the project when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,bench]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

# Arbin .res files are MS Access databases read by mdbtools (a system package): installed once where root or
# password-less sudo allows; elsewhere .res files are rejected with how to install it.
if ! command -v mdb-export >/dev/null 2>&1 && [ ! -f .venv/.mdbtools-tried ] && command -v apt-get >/dev/null 2>&1; then
  touch .venv/.mdbtools-tried
  SUDO=none; [ "$(id -u)" -eq 0 ] && SUDO=""; [ "$SUDO" = none ] && sudo -n true 2>/dev/null && SUDO="sudo -n"
  if [ "$SUDO" != none ]; then
    { $SUDO apt-get install -y -q mdbtools || { $SUDO apt-get update -q && $SUDO apt-get install -y -q mdbtools; }; } \
      >/dev/null 2>&1 || echo "dev.sh: could not install mdbtools; Arbin .res files will be rejected" >&2
  fi
fi

export PATH="$PWD/.venv/bin:$PATH"
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
export MATERIALS_DATA=${MATERIALS_DATA:-$PWD/data}
# Machines without an NVIDIA device: hide TensorFlow's failed cuInit probe (an ERROR line that only means "no GPU").
ls /dev/nvidia[0-9]* >/dev/null 2>&1 || export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"

# A job run prints INFO and above (not Dagster's DEBUG events), then a summary: scores, rejections, exports.
run_job() {
  local status=0
  "$@" -c configs/console_info.yaml || status=$?
  python -m orchestration.summary || true
  return "$status"
}

cmd=${1:-demo}
shift || true
case "$cmd" in
  demo) run_job dagster job execute -m orchestration.definitions -j materials_demo "$@" ;;
  test) exec python -m pytest "$@" ;;
  # The edit-test loop: unit tests of the science and readers, no materialized pipelines (docs/testing.md).
  test-fast) exec python -m pytest -m "not slow" "$@" ;;
  ui)   exec dagster dev -h 127.0.0.1 -p "${PORT:-3000}" "$@" ;;
  dagster)
    if [ "${1:-}" = job ] && [ "${2:-}" = execute ]; then run_job dagster "$@"; else exec dagster "$@"; fi ;;
  *)    exec "$cmd" "$@" ;;
esac
