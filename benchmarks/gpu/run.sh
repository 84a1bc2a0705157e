#!/bin/bash
# GPU throughput, end to end: ponder builds llama-server for CUDA, a random-weight model of Qwen2.5-0.5B's
# shape is written, raw llama-server throughput is measured with many concurrent streams, then
# `ponder eval` self-consistency@16 over 200 problems runs against the same server (docs/scaling.md).
#
# usage (repository root, a machine with nvcc and a GPU, no network needed):
#   benchmarks/gpu/run.sh WORKDIR [LLAMA_SRC_TGZ]
# LLAMA_SRC_TGZ: llama.cpp's sources as benchmarks/gpu/pack_sources.sh packs them from the pinned
# llama-cpp-python sdist (default .devcarry/llama.cpp-src.tar.gz); they are laid out as that sdist so that
# ponder's own build (ponder.backends.embedded.runtime, CUDA chosen by ponder.backends.embedded.accel) runs.
# Python packages ponder needs must be importable (PYTHONPATH); this script adds src/.
# Writes WORKDIR/log-style output on stdout, WORKDIR/raw.json, WORKDIR/eval/ and WORKDIR/results.json,
# and touches WORKDIR/done at the end (WORKDIR/failed on an error).
set -euo pipefail
W=$(realpath -m "${1:?usage: run.sh WORKDIR [LLAMA_SRC_TGZ]}")
SRC=$(realpath "${2:-.devcarry/llama.cpp-src.tar.gz}")
STREAMS=${STREAMS:-256}            # llama-server slots, and the raw and ponder concurrency
MAX_TOKENS=${MAX_TOKENS:-256}      # tokens per sample, raw and ponder alike
PROBLEMS=${PROBLEMS:-200}
PORT=${PORT:-8080}
RAW_CONC=${RAW_CONC:-64,$STREAMS}       # concurrencies of the raw measurement
SERVER_FLAGS=${SERVER_FLAGS:---backend-sampling --no-cache-idle-slots}
mkdir -p "$W"
rm -f "$W/done" "$W/failed"
trap 'touch "$W/failed"; [ -n "${SERVER:-}" ] && kill $SERVER 2>/dev/null' ERR
trap '[ -n "${SERVER:-}" ] && kill $SERVER 2>/dev/null; true' EXIT
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PONDER_CACHE_DIR=$W/cache PYTHONUNBUFFERED=1
stamp() { echo "[$(date +%T)] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nvcc --version | tail -2 || true

# 1. the sources, laid out as the llama-cpp-python sdist that ponder downloads (no network here)
VENDOR=$W/sdist/llama_cpp_python-0.3.36/vendor
if [ ! -e "$W/sdist.tar" ]; then
    mkdir -p "$VENDOR" && tar xzf "$SRC" -C "$VENDOR"
    tar cf "$W/sdist.tar" -C "$W/sdist" llama_cpp_python-0.3.36
fi

# 2. ponder's build, acceleration detected (nvcc + a GPU listed by nvidia-smi)
stamp "build: ponder.backends.embedded.runtime.ensure_llama_server"
python3 - "$W" <<'EOF'
import shutil, sys, time
from pathlib import Path
from ponder.backends.embedded.accel import choose_acceleration
from ponder.backends.embedded.runtime import ensure_llama_server, runtime_dir

work = Path(sys.argv[1])
print("acceleration:", choose_acceleration(), "\ncache:", runtime_dir(), flush=True)
started = time.monotonic()
binary = ensure_llama_server(quiet=True, download=lambda d: Path(shutil.copy(work / "sdist.tar", d)))
print(f"built {binary} in {time.monotonic() - started:.0f} s", flush=True)
shutil.copy(binary, work / "llama-server")
EOF

# 3. a model of Qwen2.5-0.5B-Instruct's shape with random F16 weights (the real one cannot be carried)
stamp "model: random weights"
[ -e "$W/model.gguf" ] || PYTHONPATH=$VENDOR/llama.cpp/gguf-py python3 benchmarks/gpu/random_gguf.py \
    "$VENDOR/llama.cpp/models/ggml-vocab-qwen2.gguf" "$W/model.gguf"

# 4. the server, on 127.0.0.1 only
stamp "server: -np $STREAMS $SERVER_FLAGS"
"$W/llama-server" -m "$W/model.gguf" -a m --host 127.0.0.1 --port "$PORT" --n-gpu-layers all \
    -np "$STREAMS" -c $((STREAMS * 1024)) --metrics $SERVER_FLAGS > "$W/server.log" 2>&1 &
SERVER=$!
get() { python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())" "http://127.0.0.1:$PORT/$1"; }
for _ in $(seq 300); do get health > /dev/null 2>&1 && break; sleep 1; done
get health || { tail -30 "$W/server.log"; false; }

# 5. raw: the server's maximum with many concurrent streams, no ponder code
stamp "raw"
python3 benchmarks/gpu/raw_throughput.py --base "http://127.0.0.1:$PORT" --conc "$RAW_CONC" \
    --max-tokens "$MAX_TOKENS" --ignore-eos --label raw --out "$W/raw.json"

# 6. ponder eval: self-consistency@16 over PROBLEMS problems (the text does not matter: random weights)
python3 -c "
import json
with open('$W/problems.jsonl', 'w') as out:
    for i in range($PROBLEMS):
        a, b = 17 + 37 * i % 900, 23 + 91 * i % 700
        out.write(json.dumps({'id': f'p{i}', 'question': f'What is {a} + {b}?', 'answer': str(a + b)}) + '\n')
"
metric() { get metrics | awk '/^llamacpp:tokens_predicted_total/ {print $2}'; }
EVAL=(python3 -m ponder.cli.main eval --dataset "jsonl:$W/problems.jsonl"
      --strategy "self-consistency:max_tokens=$MAX_TOKENS" --budgets 16 --seeds 1
      --base-url "http://127.0.0.1:$PORT/v1" --model m --server llama-server --parameters 494e6
      --concurrency "$STREAMS" --out "$W/eval")
if python3 -m ponder.cli.main eval --help | grep -q -- --max-in-flight; then
    EVAL+=(--max-in-flight "$STREAMS")
fi
stamp "ponder: ${EVAL[*]}"
before=$(metric); t0=$(date +%s.%N)
"${EVAL[@]}" > "$W/eval.out" 2> "$W/eval.err" || { tail -30 "$W/eval.err"; false; }
t1=$(date +%s.%N); after=$(metric)
tail -5 "$W/eval.out"

# 6b. raw again on the same server: did the server itself slow down over the run?
stamp "raw after"
python3 benchmarks/gpu/raw_throughput.py --base "http://127.0.0.1:$PORT" --conc "$STREAMS" --waves 1 \
    --max-tokens "$MAX_TOKENS" --ignore-eos --label raw-after --out "$W/raw-after.json"

# 7. the figures
python3 - "$W" "$t0" "$t1" "$before" "$after" <<'EOF'
import json, sys
from pathlib import Path

work, t0, t1, before, after = Path(sys.argv[1]), *map(float, sys.argv[2:])
records = [json.loads(line) for line in (work / "eval" / "records.jsonl").open()]
billed = sum(r["usage"]["completion_tokens"] for r in records)
samples = sum(len(r["candidates"]) for r in records)
wall = t1 - t0
raw = {row["concurrency"]: row for row in json.loads((work / "raw.json").read_text())}
after = json.loads((work / "raw-after.json").read_text())[0]["tokens_per_s"]
best = max(after, *(row["tokens_per_s"] for row in raw.values()))  # a fresh server's first wave is slow
result = {
    "raw_tokens_per_s": {c: row["tokens_per_s"] for c, row in raw.items()},
    "ponder_records": len(records),
    "ponder_samples": samples,
    "ponder_billed_completion_tokens": billed,
    "server_predicted_tokens": after - before,
    "ponder_wall_s": round(wall, 1),
    "ponder_tokens_per_s": round(billed / wall, 1),
    "server_tokens_per_s_during_eval": round((after - before) / wall, 1),
    "ratio_to_raw_max": round(billed / wall / best, 3),
    "raw_after_tokens_per_s": after,
}
(work / "results.json").write_text(json.dumps(result, indent=1))
print(json.dumps(result, indent=1))
EOF
stamp done
touch "$W/done"
