#!/usr/bin/env bash
# GPU check (a few minutes): the devices TensorFlow sees, then the quickstart config for 200 steps on one GPU and on
# every visible GPU (MirroredStrategy, XLA per replica), each printing it/s; then the FLOPs of one step.
# Usage, from the repository root with the GPU build installed (BUILD.md, "GPU"):
#   bash tools/gpu_check.sh [python]          # default python: .venv/bin/python
set -uo pipefail
PY=${1:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d)}
echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
"$PY" -c "import tensorflow as tf; print('tensorflow', tf.__version__, 'built with CUDA:', tf.test.is_built_with_cuda()); print('GPUs:', tf.config.list_physical_devices('GPU'))"
GPUS=$("$PY" -c "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null)
if [ "${GPUS:-0}" -lt 1 ]; then echo "error: TensorFlow sees no GPU"; exit 1; fi
run() {  # name, extra flags
  local name=$1; shift
  echo "== $name"
  "$PY" -m mmali_tf.train --config=quickstart --workdir="$OUT/$name" --max_iter=200 --log_every=50 \
      --save_every=200 --image_every=1000 "$@" 2>&1 | grep -E "parameters:|role:|step (50|100|150|200)/|error" \
      || echo "error: run $name failed"
}
CUDA_VISIBLE_DEVICES=0 run one_gpu
run all_gpus --strategy=mirrored --num_devices="$GPUS"
echo "== step FLOPs (one GPU)"
CUDA_VISIBLE_DEVICES=0 "$PY" -m mmali_tf.tools.benchmark_train --configs=quickstart --modes=xla1 --steps=20 \
    --repeats=2 --nopipeline 2>&1 | tail -n 8 || echo "error: benchmark failed"
echo "== outputs in $OUT"
