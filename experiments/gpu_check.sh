#!/usr/bin/env bash
# The issue-12 GPU measurements in one run (< 8 min on one H100/H200; nothing to set up first).
#
#   bash experiments/gpu_check.sh            # rows -> $OUT (or /tmp/vidjax_gpu)/gpu_rows.jsonl
#
# Each item is one experiments/benchmark.py row (bf16 compute, fp32 params, synthetic clips on
# device; 2 warm-up + 10 timed steps), in priority order; an item that runs out of memory is
# retried once at half the batch, and items stop being started after 7 minutes. Targets (issue
# 12): B/16 K400 8x224 train MFU >= 45 % and compile <= 60 s; Video-FocalNet-B train MFU >= 30 %;
# L/14 32x224 train at >= 8 clips per device with remat; cuDNN flash attention vs XLA.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
DIR=${OUT:-/tmp/vidjax_gpu}
mkdir -p "$DIR"
ROWS="$DIR/gpu_rows.jsonl"
: > "$ROWS"
START=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$DIR/gpu.txt" 2>&1
cat "$DIR/gpu.txt"

item() {  # name config mode batch [extra flags...]
  local name=$1 config=$2 mode=$3 batch=$4
  shift 4
  if [ $(( $(date +%s) - START )) -gt 420 ]; then
    echo "skip $name: time budget spent" | tee -a "$DIR/log.txt"
    return
  fi
  for b in "$batch" $((batch / 2)); do
    [ "$b" -ge 1 ] || continue
    echo "== $name (batch $b)" | tee -a "$DIR/log.txt"
    if timeout 150 "$PY" experiments/benchmark.py --config "configs/$config" --mode "$mode" \
        --batch "$b" --steps 10 --warmup 2 --dtype bfloat16 "$@" \
        > "$DIR/$name.out" 2> "$DIR/$name.err"; then
      tail -n 1 "$DIR/$name.out" | "$PY" -c "
import json, sys
for r in json.loads(sys.stdin.read()):
  r['item'] = '$name'
  print(json.dumps(r))" >> "$ROWS"
      tail -n 3 "$DIR/$name.out" | head -n 2
      return
    fi
    tail -n 3 "$DIR/$name.err" | tee -a "$DIR/log.txt"
    grep -qiE "RESOURCE_EXHAUSTED|out of memory" "$DIR/$name.err" || return
  done
}

item b16_train      uniformerv2/k400_b16_8x224.py          train 32
item focalnet_b_train video_focalnet/k400_base.py          train 16
item l14_32f_train  uniformerv2/k400_k710_l14_32x224.py    train 8 --config.model.remat_policy=full
item b16_train_cudnn uniformerv2/k400_b16_8x224.py         train 32 --config.model.attention_impl=cudnn
item b16_infer      uniformerv2/k400_b16_8x224.py          infer 64
item focalnet_b_infer video_focalnet/k400_base.py          infer 32

echo "rows: $ROWS ($(wc -l < "$ROWS") rows, $(( $(date +%s) - START )) s)"
