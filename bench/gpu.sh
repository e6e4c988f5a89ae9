#!/usr/bin/env bash
# The GPU measurements, in one run on a lent GPU machine (about 6 minutes on an H100/H200). That machine has
# PyTorch, transformers and peft but no network: the models are built from configs with random weights (fine for
# throughput) around the embedded model's tokenizer, which travels in .gpu/ (ignored by git). Prepare it here:
#
#   echo /.gpu/ >> .git/info/exclude
#   .venv/bin/python bench/train.py --export-tokenizer .gpu/tokenizer
#
# then run this script there with `.gpu` carried:  bash bench/gpu.sh   (results land in $OUT, or /tmp/gpu-out).
# For QLoRA, bitsandbytes must travel as a wheel too (the device tool's README says how); without it the QLoRA
# tests skip and say so.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
PY=${PY:-python3}
TOK=${TOK:-.gpu/tokenizer}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__,
'peft', peft.__version__, 'bf16', torch.cuda.is_bf16_supported())" | tee -a "$OUT/gpu.txt"

run() {  # name, then bench/train.py arguments; the last line of each is its JSON
    echo "== $1" | tee -a "$OUT/summary.txt"
    shift
    timeout 240 $PY bench/train.py --tokenizer "$TOK" "$@" 2>"$OUT/err-$RANDOM.txt" | tee -a "$OUT/summary.txt"
}
# 1. The classroom run's shape and data: the engine against the Trainer recipe, bf16 on the GPU.
run classroom-135m --model random:smollm2-135m --steps 30 --rounds 2
# 2. An 8B-shaped model (8 of its 32 layers: the same per-layer work, a quarter of the weights), sequence 2048: MFU.
run llama-8b-seq2048 --model random:llama-8b --layers 8 --data long --seq 2048 --batch 4 --steps 8
run llama-8b-seq2048-all-linear --model random:llama-8b --layers 8 --data long --seq 2048 --batch 4 --steps 8 \
    --targets all-linear
run llama-8b-seq2048-checkpointing --model random:llama-8b --layers 8 --data long --seq 2048 --batch 8 --steps 6 \
    --gradient-checkpointing
# 3. The GPU-only tests (QLoRA and bf16 paths), where their packages are there.
timeout 120 $PY -m pytest -q -rs tests/test_methods.py -k "qlora" 2>&1 | tail -5 | tee -a "$OUT/summary.txt"
