#!/usr/bin/env bash
# One `python -m stream serve` worker per GPU adapter on this machine: worker N runs on
# adapter N (as listed by `python -m stream devices`) at port BASE_PORT+N, so the viewers of
# GPU N use http://HOST:$((BASE_PORT+N))/ and its WHEP endpoint http://HOST:$((BASE_PORT+N))/whep.
# Extra arguments go to every worker (e.g. --config configs/serve.toml --host 0.0.0.0).
# Workers may share one ICE UDP range (server.ice_port_min/max): each binds the ports that are
# free, so size the range for all workers' viewers together. Ctrl-C stops them all.
#
#   scripts/serve-all-gpus.sh --host 0.0.0.0
#   BASE_PORT=9000 ADAPTERS="0 2" scripts/serve-all-gpus.sh --config configs/serve.toml
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
BASE_PORT=${BASE_PORT:-8080}

if [ -z "${ADAPTERS:-}" ]; then
  # lines "N: name [type, backend] ...": each GPU's Vulkan adapter (a GPU is also listed
  # under other backends); lavapipe ([CPU, Vulkan]) only when there is no GPU
  mapfile -t lines < <("$PY" -m stream devices 2>/dev/null)
  ADAPTERS=""
  for line in "${lines[@]}"; do
    case "$line" in *"[CPU,"*) ;; [0-9]*", Vulkan]"*) ADAPTERS+="${line%%:*} " ;; esac
  done
  if [ -z "$ADAPTERS" ]; then ADAPTERS="0"; fi
fi

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait' INT TERM EXIT
for n in $ADAPTERS; do
  port=$((BASE_PORT + n))
  echo "adapter $n -> port $port"
  "$PY" -m stream serve --adapter "$n" --port "$port" "$@" &
  pids+=($!)
done
wait
