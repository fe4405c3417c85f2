#!/usr/bin/env bash
# A prepared check of framesmith on a machine with an NVIDIA GPU, in under 5 minutes:
#   1. the engine against onnxruntime (CPU, and CUDA when onnxruntime-gpu installs) for the
#      bundled models at 1080p input, fp32 and fp16, with the conv kernels chosen by
#      measurement on this GPU (infer.kernel_choice; the choices are kept in OUT);
#   2. the per-layer profile and roofline of the default model at 1080p;
#   3. the service end to end at 1080p (`python -m stream bench`: test scene -> model ->
#      VP8 -> a WHEP viewer), unless --no-service.
# Everything lands in OUT (default ./gpu-check-out): engine-1080p.json, layers-1080p.json,
# service-1080p.json with their PNGs, kernels-*.json, logs/, and gpu-check.json, which says
# what ran, what failed or was skipped and why.
#
# It runs on a bare machine with only this repository and pip: no apt unless it is there and
# we are root, no internet unless pip can reach it. What it needs and where it comes from:
#   python >= 3.11        PYTHON (default python3)
#   the package           FRAMESMITH_PY (a python with framesmith installed), else the repo's
#                         .venv when it has framesmith and onnxruntime, else a virtual
#                         environment made in OUT/venv
#   wheels, offline       WHEELS=/dir (pip --no-index --find-links), else the network
#   a Vulkan loader       libvulkan.so.1 from the system; else .deb files in GL_DEBS (default
#                         ./.gl) unpacked with dpkg -x (what scripts/setup.sh would apt-get);
#                         else apt-get install libvulkan1 when root and apt works
#   the NVIDIA ICD        found in the usual places (/usr/share, /etc, /usr/local/nvidia)
#   onnxruntime-gpu       pip, into OUT/venv only (FRAMESMITH_ORT_CUDA=0: do not try)
#
# usage: scripts/gpu-check.sh [OUT] [--quick] [--no-service]
#   --quick   small sizes (320x180), few runs: checks the script itself on any machine
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

OUT=""
QUICK=0
SERVICE=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-service) SERVICE=0 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) OUT="$arg" ;;
  esac
done
OUT=$(mkdir -p "${OUT:-gpu-check-out}" && cd "${OUT:-gpu-check-out}" && pwd)
mkdir -p "$OUT/logs"
START=$(date +%s)
STEPS="$OUT/steps.tsv"
: >"$STEPS"

if [ "$QUICK" = 1 ]; then
  SIZE=320x180 RUNS=3 SECONDS_MEASURED=4 WARMUP=4 PRECISIONS=fp32
else
  SIZE=1080p RUNS=5 SECONDS_MEASURED=20 WARMUP=10 PRECISIONS=fp32,fp16
fi

log() { echo "gpu-check: $*" | tee -a "$OUT/logs/gpu-check.log"; }

# step NAME TIMEOUT_S COMMAND...: runs with a time limit, logs to logs/NAME.log, records
# name / status / seconds / exit code in steps.tsv and never stops the script
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  log "$name (at most ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
  local rc=$?
  local status=ok
  if [ $rc = 124 ] || [ $rc = 137 ]; then status=timeout; elif [ $rc != 0 ]; then status=failed; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" "$rc" >>"$STEPS"
  log "$name: $status (exit $rc, $(( $(date +%s) - t0 ))s); tail of logs/$name.log:"
  tail -n 5 "$OUT/logs/$name.log" | sed 's/^/    /' | tee -a "$OUT/logs/gpu-check.log"
  return $rc
}
skip() { printf '%s\tskipped\t0\t%s\n' "$1" "$2" >>"$STEPS"; log "$1: skipped ($2)"; }

# ---- the machine ---------------------------------------------------------------------------
{ uname -a; nproc; free -g 2>/dev/null; uptime; } >"$OUT/logs/machine.txt" 2>&1
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi >"$OUT/logs/nvidia-smi.txt" 2>&1
  log "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
else
  log "no nvidia-smi: the engine will use whatever Vulkan adapter exists (maybe none)"
fi

# ---- Vulkan loader and the NVIDIA ICD -------------------------------------------------------
have_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; }
if ! have_loader; then
  GL_DEBS=${GL_DEBS:-$ROOT/.gl}
  if compgen -G "$GL_DEBS/*.deb" >/dev/null && [ "$(id -u)" = 0 ]; then
    log "no libvulkan.so.1: unpacking $GL_DEBS/*.deb"
    for f in "$GL_DEBS"/*.deb; do dpkg -x "$f" /; done
    ldconfig
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "no libvulkan.so.1: trying apt-get install libvulkan1"
    timeout 120 apt-get install -y -qq libvulkan1 >"$OUT/logs/apt.log" 2>&1 \
      || { timeout 60 apt-get update -qq >>"$OUT/logs/apt.log" 2>&1 \
           && timeout 120 apt-get install -y -qq libvulkan1 >>"$OUT/logs/apt.log" 2>&1; } \
      || log "apt-get could not install libvulkan1 (see logs/apt.log)"
  fi
  have_loader || log "still no Vulkan loader: the engine steps will fail and say so"
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then
  if ! compgen -G "/usr/share/vulkan/icd.d/nvidia*.json" >/dev/null \
    && ! compgen -G "/etc/vulkan/icd.d/nvidia*.json" >/dev/null; then
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
      /usr/local/nvidia/icd.d/nvidia_icd.json; do
      if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; log "NVIDIA ICD: $icd"; break; fi
    done
  fi
fi

# ---- Python and the package -----------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  log "error: $PYTHON is missing or older than 3.11"
  exit 2
fi
PIP_SRC=()
if [ -n "${WHEELS:-}" ]; then PIP_SRC=(--no-index --find-links "$WHEELS"); fi
if [ -n "${FRAMESMITH_PY:-}" ]; then
  PY=$FRAMESMITH_PY
  log "using $PY"
elif [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c 'import infer, onnxruntime' 2>/dev/null; then
  PY=$ROOT/.venv/bin/python
  log "using the existing $ROOT/.venv"
else
  PY=$OUT/venv/bin/python
  [ -x "$PY" ] || "$PYTHON" -m venv "$OUT/venv" || { log "error: cannot create a venv"; exit 2; }
  # the engine, its tools, the service and plots (not the train or dev extras: no torch,
  # no browsers), onnxruntime as the reference
  step install 240 "$PY" -m pip install -q "${PIP_SRC[@]}" -e "$ROOT[service,plots]" onnxruntime \
    || log "install failed: what is importable below still runs"
fi
# onnxruntime's CUDA provider: onnxruntime-gpu with the CUDA/cuDNN wheels it names, if pip
# can get them; it replaces the CPU-only onnxruntime (the CPU provider stays in it). Only in
# the environment this script made: an existing one (FRAMESMITH_PY, the repo's .venv) is
# never changed.
if [ "${FRAMESMITH_ORT_CUDA:-1}" = 0 ]; then
  skip ort-cuda "FRAMESMITH_ORT_CUDA=0"
elif [ "$PY" = "$OUT/venv/bin/python" ] \
  && "$PY" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" in o.get_available_providers())' 2>/dev/null; then
  if step ort-cuda 240 "$PY" -m pip install -q "${PIP_SRC[@]}" "onnxruntime-gpu[cuda,cudnn]"; then
    "$PY" -m pip uninstall -q -y onnxruntime >/dev/null 2>&1
    "$PY" -m pip install -q --force-reinstall --no-deps "${PIP_SRC[@]}" onnxruntime-gpu \
      >>"$OUT/logs/ort-cuda.log" 2>&1
  fi
elif [ "$PY" != "$OUT/venv/bin/python" ]; then
  skip ort-cuda "an existing environment is not changed: its onnxruntime providers are used"
fi
"$PY" - >"$OUT/logs/versions.txt" 2>&1 <<'EOF'
import importlib
for name in ("wgpu", "numpy", "onnx", "onnxruntime", "av", "aiortc", "matplotlib"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as e:  # noqa: BLE001 - a report line
        print(name, "missing:", e)
try:
    import onnxruntime as ort
    print("onnxruntime providers:", ort.get_available_providers())
except Exception as e:  # noqa: BLE001
    print("onnxruntime providers: none", e)
EOF
step adapter 60 "$PY" -c '
import wgpu, infer
for a in wgpu.gpu.enumerate_adapters_sync():
    print(dict(a.info))
d = infer.get_device()
print("chosen:", d.name, "cpu" if d.is_cpu else "gpu")
print({k: d.limits[k] for k in ("max-storage-buffer-binding-size", "max-buffer-size", "max-compute-workgroup-storage-size")})
' || log "no GPU adapter for the engine: see logs/adapter.log"
if grep -q "chosen: .* cpu" "$OUT/logs/adapter.log" 2>/dev/null && [ "$QUICK" = 0 ]; then
  log "warning: the engine found only a CPU adapter; 1080p figures will be very slow"
fi

# ---- the engine ---------------------------------------------------------------------------
# kernels measured on this GPU (cached in OUT); --quick checks the script, not the kernels
export FRAMESMITH_KERNEL_CACHE=$OUT/kernel-cache
export FRAMESMITH_KERNELS=$([ "$QUICK" = 1 ] && echo rules || echo measure)
step engine 150 "$PY" -m infer bench --models upscale.onnx,upscale-hq.onnx,denoise.onnx \
  --sizes "$SIZE" --precisions "$PRECISIONS" --runs "$RUNS" \
  --json "$OUT/engine-$SIZE.json" --plot
step layers 60 "$PY" -m infer bench upscale.onnx --layers --size "$([ "$QUICK" = 1 ] && echo 320x180 || echo 1920x1080)" \
  --json "$OUT/layers-$SIZE.json" --plot
cp "$FRAMESMITH_KERNEL_CACHE"/kernels-*.json "$OUT/" 2>/dev/null

# ---- the service end to end ----------------------------------------------------------------
if [ "$SERVICE" = 1 ]; then
  step service 100 "$PY" -m stream bench --sizes "$SIZE" --seconds "$SECONDS_MEASURED" \
    --warmup "$WARMUP" --frames 16 --rounds 1 --workdir "$OUT/service-work" \
    --json "$OUT/service-$SIZE.json" --plot
else
  skip service "--no-service"
fi

# ---- the summary ----------------------------------------------------------------------------
"$PY" - "$OUT" "$START" <<'EOF' || cat "$OUT/steps.tsv"
import json, sys, time
from pathlib import Path

out, start = Path(sys.argv[1]), float(sys.argv[2])
steps = []
for line in (out / "steps.tsv").read_text().splitlines():
    name, status, seconds, rc = line.split("\t")
    what = "reason" if status == "skipped" else "exit"
    steps.append({"step": name, "status": status, "seconds": int(seconds), what: rc})
summary = {
    "kind": "gpu-check",
    "seconds": round(time.time() - start),
    "steps": steps,
    "files": sorted(p.name for p in out.iterdir() if p.suffix in (".json", ".png")),
    "machine": (out / "logs" / "machine.txt").read_text(errors="replace"),
}
for name in ("nvidia-smi.txt", "versions.txt", "adapter.log"):
    p = out / "logs" / name
    if p.is_file():
        summary[name] = p.read_text(errors="replace")[-4000:]
for p in sorted(out.glob("engine-*.json")):
    rows = json.loads(p.read_text())["rows"]
    summary["engine"] = [
        {k: r.get(k) for k in ("model", "size", "precision", "ratios", "kernels", "skipped")}
        | {"ms": r.get("framesmith", {}).get("median_ms")}
        for r in rows
    ]
(out / "gpu-check.json").write_text(json.dumps(summary, indent=2))
for s in steps:
    print(f"  {s['step']:<10} {s['status']:<8} {s['seconds']:>4}s")
print(f"gpu-check: {summary['seconds']}s; wrote {out / 'gpu-check.json'}")
EOF
grep -qv $'\tok\t\|\tskipped\t' "$STEPS" && exit 1 || exit 0
