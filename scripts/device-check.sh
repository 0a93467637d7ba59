#!/usr/bin/env bash
# scripts/device-check.sh - the GPU checks as one command for a lent GPU machine (issue 10):
# bench_gpu.py (GPT-2 small shape on one GPU, bf16: tokens/s, MFU, peak memory), then
# bench_dist_gpu.py (dist=none, ddp, FSDP2, ZeRO-2, ZeRO-3). Each runs under its own time
# limit, so one that hangs leaves the other's figures; everything printed is also kept in $OUT.
#
#   here:   bash scripts/device-kit.sh        (wheels the machine's image lacks, the corpus)
#   there:  the device tool's run with command "bash scripts/device-check.sh",
#           carry [".device-kit"], timeout_s 570 (the limits below, 210 + 330 s, and set-up)
#   on CPU: DEVICE_PYTHON=<this python, e.g. 3.11> bash scripts/device-kit.sh, then
#           bash scripts/device-check.sh --small   (tiny shapes; tests/test_device_check.py)
set -uo pipefail
cd "$(dirname "$0")/.."
KIT=${KIT:-.device-kit}
OUT=${OUT:-$(mktemp -d)}
PYTHON=${PYTHON:-python3}
SITE=${SITE:-$(mktemp -d)}
SMALL=()
if [ "${1:-}" = --small ]; then SMALL=(--small); fi

if ! [ -d "$KIT/whl" ]; then
    echo "no $KIT/whl: run 'bash scripts/device-kit.sh' first, then carry $KIT" >&2
    exit 2
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$KIT"/whl/*.whl || exit
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# the kit's corpus, read-only; the prepared data and caches go elsewhere (the kit stays small)
LMSWEEP_CACHE=$(mktemp -d) && ln -s "$(cd "$KIT" && pwd)/cache/corpus" "$LMSWEEP_CACHE/corpus"
export LMSWEEP_CACHE

"$PYTHON" -c 'import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"python {platform.python_version()}, torch {torch.__version__}, {gpu}")' |
    tee "$OUT/device.txt"
status=0
timeout 210 "$PYTHON" scripts/bench_gpu.py "${SMALL[@]}" 2>&1 | tee "$OUT/bench_gpu.txt" ||
    status=1
timeout 330 "$PYTHON" scripts/bench_dist_gpu.py "${SMALL[@]}" 2>&1 |
    tee "$OUT/bench_dist_gpu.txt" || status=1
exit $status
