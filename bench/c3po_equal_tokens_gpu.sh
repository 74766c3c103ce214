#!/usr/bin/env bash
# C3PO vs GRPO vs the no-RL control at equal tokens on one GPU, in a fixed wall-time budget.
#
# The configuration below is fixed before any result is seen (nothing is tuned on it), so the
# one test-split evaluation it makes is legitimate; validation is evaluated beside it. Phases,
# sharing one clock (T0): plan (Φ); the six RL runs (2 arms x 3 seeds) as parallel processes
# on the one GPU, with the start checkpoint's evaluation; then per seed the SFT control and the
# evaluation of that seed's three runs; then the report, which takes whatever finished (a run cut
# off by its stop is left out and the report says which seeds are complete).
#
#   OUT=/some/dir bash bench/c3po_equal_tokens_gpu.sh   # writes $OUT/c3po/{report*,plot*,log.txt}
#
# DEVICE, RUN_DIR, the *_UNTIL stops (seconds after T0) and EXTRA (arguments appended to every
# call, e.g. a tiny config for a CPU check) may be overridden from the environment.
set -u
OUT_DIR="${OUT:?set OUT to the folder that receives the results}/c3po"
RUN="${RUN_DIR:-runs/c3po_equal_tokens_gpu}"
DEVICE="${DEVICE:-cuda}"
TRAIN_UNTIL="${TRAIN_UNTIL:-150}"
CONTROL_UNTIL="${CONTROL_UNTIL:-205}"
EVAL_UNTIL="${EVAL_UNTIL:-240}"
HARD_STOP="${HARD_STOP:-250}"  # a process still running then is killed; the report follows
mkdir -p "$OUT_DIR"
rm -rf "$RUN"
T0=$(date +%s)
# Keep what the caller put on the path (a GPU host may carry the verifier's wheels there).
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
# The rewards need the verifier; without it every RL run would die at its first rollout.
python3 -c "import math_verify, torch, transformers, safetensors" || {
    echo "missing a package the bench needs (math-verify, torch, transformers, safetensors)" >&2
    exit 2
}
left() { local s=$((T0 + $1 - $(date +%s))); echo $((s > 1 ? s : 1)); }
BENCH=(python3 -m bench.bench_c3po_equal_tokens --device "$DEVICE" --out "$RUN" --threads 1
    --seeds 0,1,2 --steps 10 --prompts 16 --group 8 --max-tokens 640 --probe-batches 2
    --lr 2e-5 --kl-beta 1e-3 --sft-lr 1e-4 --eval-per-level 1000 --eval-batch 128
    --checkpoint-every 5 --split test,validation --clock-start "$T0"
    --train-until "$TRAIN_UNTIL" --control-until "$CONTROL_UNTIL" --eval-until "$EVAL_UNTIL")
# bench SECONDS_AFTER_T0 ARGS...: one call of the bench, killed if still running at that time.
# shellcheck disable=SC2086
bench() { timeout "$(left "$1")" "${BENCH[@]}" "${@:2}" ${EXTRA:-}; }
{
    echo "start $(date -u +%FT%TZ) device $DEVICE"
    bench "$TRAIN_UNTIL" --part plan
    echo "plan done at $(($(date +%s) - T0)) s"
    for seed in 0 1 2; do
        for arm in c3po grpo; do
            bench $((TRAIN_UNTIL + 15)) --part train --seeds $seed --arms $arm &
        done
    done
    bench "$HARD_STOP" --part eval --eval-which start &
    wait
    echo "train done at $(($(date +%s) - T0)) s"
    for seed in 0 1 2; do
        bench "$HARD_STOP" --part control,eval --eval-which runs --seeds $seed &
    done
    wait
    echo "control and eval done at $(($(date +%s) - T0)) s"
    bench $((HARD_STOP + 60)) --part report --report-dir "$OUT_DIR"
    echo "report done at $(($(date +%s) - T0)) s"
} 2>&1 | tee "$OUT_DIR/log.txt"
