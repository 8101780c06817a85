#!/usr/bin/env bash
# The GPU check in one go, one log per step in $OUT:
#   1-suite.log      the tests of the array code on the backend (-m "not host")
#   2-agreement.log  the loss and a training step, NumPy against the backend, same weights
#   3-train.log      a CIFAR-10-subset run of the cifar10 preset, then python -m tinybt.evaluate
#   4-speed.log      a training step against PyTorch (CUDA when the backend is cupy), and the
#                    time of each op, at batch 256 and 1024
#   summary.txt      the machine, and each step's exit status and seconds
# A failing step is recorded and the next one still runs; the script exits 1 if any failed.
# The step limits add up to 9 minutes; STEPS="3 4" runs only those.
#
# On any machine with an NVIDIA GPU, from the repository root, with tinybt installed with CuPy
# (pip install -e ".[gpu]") and PyTorch with CUDA for the speed step:
#   ARCHIVE=path/to/cifar-10-python-subset.tar.gz OUT=gpu-check bash benchmarks/gpu_check.sh
# ARCHIVE is the CIFAR-10 subset for step 3, by default in data/gpu-carry/ (git-ignored):
#   mkdir -p data/gpu-carry && cp ../shared/datasets/cifar-10-python-subset.tar.gz data/gpu-carry/
# On a CPU, end to end in a few minutes (torch on the CPU as the reference):
#   TINYBT_BACKEND=numpy QUICK=1 OUT=/tmp/gpucheck-out bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export TINYBT_BACKEND=${TINYBT_BACKEND:-cupy} PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # tinybt from this checkout, not installed
: "${OUT:?set OUT to the folder for the logs}"
PYTHON=${PYTHON:-python3}
ARCHIVE=${ARCHIVE:-data/gpu-carry/cifar-10-python-subset.tar.gz}
RUN=$(mktemp -d)/cifar10-subset  # the run's checkpoint and figures stay off $OUT (8 files back)
trap 'rm -rf "${RUN%/*}"' EXIT
if [ "${QUICK:-0}" = 1 ]; then  # small sizes, to check the script itself on a CPU
    TRAIN="--epochs 1 --train-size 256 --batch-size 64 --snapshot-size 64"
    PROBE=5 AGREE_BATCH=16 SPEED="--batch-sizes 16 32 --repeats 1 --rounds 1" SUITE="not slow and not host"
else
    TRAIN="--epochs 3"
    PROBE=100 AGREE_BATCH=64 SPEED="--batch-sizes 256 1024 --repeats 5 --rounds 2" SUITE="not host"
fi
mkdir -p "$OUT"
failed=0

step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit, logging to $OUT/NAME.log
    local name=$1 limit=$2 start=$SECONDS status
    shift 2
    [[ " ${STEPS:-1 2 3 4} " == *" ${name%%-*} "* ]] || return 0
    echo "== $name: $*" | tee "$OUT/$name.log"
    timeout "$limit" "$@" >>"$OUT/$name.log" 2>&1
    status=$?
    echo "$name: exit $status, $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
    [ "$status" = 0 ] || failed=1
}

{
    echo "backend $TINYBT_BACKEND, quick ${QUICK:-0}, $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
    "$PYTHON" -c "import numpy, sys; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
    "$PYTHON" -c "import cupy; print('cupy', cupy.__version__)" 2>&1 | tail -1
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -1
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"

step 1-suite 210 "$PYTHON" -m pytest -q -p no:cacheprovider -m "$SUITE"
step 2-agreement 60 "$PYTHON" benchmarks/backend_agreement.py \
    --backends numpy "$TINYBT_BACKEND" --batch-size "$AGREE_BATCH"
step 3-train 150 bash -c "$PYTHON -m tinybt.train --preset cifar10 --data-dir $ARCHIVE $TRAIN \
    --backend $TINYBT_BACKEND --out $RUN --no-evaluate \
    && $PYTHON -m tinybt.evaluate $RUN --probe-epochs $PROBE"
step 4-speed 120 "$PYTHON" benchmarks/train_step_speed.py --backend "$TINYBT_BACKEND" $SPEED --op-times
exit $failed
