"""The inference worker's own process per token: vLLM's frontend (`AsyncLLM`'s output handling,
incremental detokenisation, the sampled tokens' log-probabilities) under asyncio's loop and under
uvloop, with and without the log-probabilities the answer's confidence needs, side by side.

    .venv/bin/python bench/bench_engine_frontend_cpu.py [--streams 32] [--rounds 3]

One ring-tiny engine (the worker's engine settings: `worker.inference.engine`), then for each
loop a fresh child process that builds the engine and runs rounds of `--streams` greedy answers
at once (256 new tokens), alternating "logprobs=0" (what the worker asks for) and "none" within
each round, the order flipped every round. The engine core is a separate process, so the figure
is the frontend process's CPU (all its threads) per generated token, the CPU the worker's main
process spends per token before any work of its own. Prints the median of the rounds per case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKPOINT = ROOT / "checkpoints" / "ring-tiny"
CASES = ("logprobs=0", "none")


async def _answer(llm, request_id: str, prompt_ids: list[int], *, logprobs: bool) -> int:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    from training.confidence import sampled_logprobs

    params = SamplingParams(
        max_tokens=256,
        temperature=0.0,
        output_kind=RequestOutputKind.DELTA,
        logprobs=0 if logprobs else None,
    )
    (engine_input,) = llm.renderer.render_cmpl([{"prompt_token_ids": prompt_ids}])
    tokens = 0
    async for output in llm.generate(engine_input, params, request_id):
        completion = output.outputs[0]
        tokens += len(completion.token_ids)
        if logprobs:
            sampled_logprobs(completion)  # what the worker reads of them
    return tokens


async def _measure(streams: int, rounds: int) -> dict[str, list[float]]:
    import django
    from transformers import AutoTokenizer
    from vllm.v1.engine.async_llm import AsyncLLM

    django.setup()
    from worker.inference.config import config_from_settings
    from worker.inference.engine import vllm_engine_args

    settings = config_from_settings().engine  # the worker's own engine settings
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(settings.kv_cache_gib)
    tokenizer = AutoTokenizer.from_pretrained(str(CHECKPOINT), trust_remote_code=True)
    llm = AsyncLLM.from_engine_args(vllm_engine_args(str(CHECKPOINT), settings))
    prompts = [
        tokenizer.encode(f"Compute {i} times {i + 3} and explain each step.")
        for i in range(streams)
    ]
    results: dict[str, list[float]] = {case: [] for case in CASES}
    count = 0
    try:
        for round_ in range(rounds + 1):  # the first round warms up and is not counted
            for case in CASES if round_ % 2 == 0 else reversed(CASES):
                start = time.process_time()
                tokens = await asyncio.gather(
                    *[
                        _answer(llm, f"r{count}-{i}", ids, logprobs=case == "logprobs=0")
                        for i, ids in enumerate(prompts)
                    ]
                )
                count += 1
                if round_:
                    us = (time.process_time() - start) / sum(tokens) * 1e6
                    results[case].append(us)
    finally:
        llm.shutdown()
    return results


def _child(loop: str, streams: int, rounds: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(_measure(streams, rounds))
    else:
        results = asyncio.run(_measure(streams, rounds))
    print("RESULT " + json.dumps(results), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("asyncio", "uvloop"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.streams, args.rounds)
        return
    table = {}
    for loop in ("asyncio", "uvloop"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", loop, f"--streams={args.streams}",
             f"--rounds={args.rounds}"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout  # fmt: skip
        table[loop] = json.loads(out.split("RESULT ", 1)[1])
    print(f"vLLM frontend CPU per token, {args.streams} streams, median of {args.rounds} rounds")
    print("| loop | logprobs=0 (the worker) | none |")
    print("|---|---|---|")
    for loop, results in table.items():
        cells = []
        for case in CASES:
            values = results[case]
            rounds = ", ".join(f"{v:.1f}" for v in values)
            cells.append(f"{statistics.median(values):.1f} µs ({rounds})")
        print(f"| {loop} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
