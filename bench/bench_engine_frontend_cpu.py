"""The inference worker's own process per token: vLLM's frontend (`AsyncLLM`'s output handling,
incremental detokenisation, the sampled tokens' log-probabilities) under asyncio's loop and under
uvloop, with the log-probabilities the answer's confidence needs as the worker asks for them,
as vLLM hands them out by default (each entry decoded to text), and without them, side by side.

    .venv/bin/python bench/bench_engine_frontend_cpu.py [--streams 32] [--rounds 3]

One ring-tiny engine (the worker's engine settings: `worker.inference.engine`), then for each
loop a fresh child process that builds the engine and runs rounds of `--streams` greedy answers
at once (256 new tokens), alternating the three cases within each round, the order flipped every
round. The engine core is a separate process, so the first figure is the frontend process's CPU
(all its threads) per generated token, the CPU the worker's main process spends per token before
any work of its own; the second is the round's tokens per second by the wall clock, whether the
log-probabilities slow the engine as a whole. Prints the median of the rounds per case.
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
# The worker's request (`logprobs=0`, the entries left undecoded: engine.skip_logprob_decoding),
# the same with vLLM's default decoding of every entry, and no log-probabilities at all.
CASES = ("worker", "decoded", "none")
TITLES = {
    "worker": "logprobs=0, undecoded (the worker)",
    "decoded": "logprobs=0, decoded (vLLM's default)",
    "none": "no log-probabilities",
}


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


async def _measure(streams: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    import django
    from transformers import AutoTokenizer
    from vllm.v1.engine.async_llm import AsyncLLM

    django.setup()
    from worker.inference.config import config_from_settings
    from worker.inference.engine import skip_logprob_decoding, vllm_engine_args

    settings = config_from_settings().engine  # the worker's own engine settings
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(settings.kv_cache_gib)
    tokenizer = AutoTokenizer.from_pretrained(str(CHECKPOINT), trust_remote_code=True)
    llm = AsyncLLM.from_engine_args(vllm_engine_args(str(CHECKPOINT), settings))
    processor = llm.output_processor
    register = {"decoded": processor.add_request}
    assert skip_logprob_decoding(llm), "the installed vLLM is the shape the worker expects"
    register["worker"] = register["none"] = processor.add_request
    prompts = [
        tokenizer.encode(f"Compute {i} times {i + 3} and explain each step.")
        for i in range(streams)
    ]
    # Per case: the frontend's CPU per token (µs), and the whole engine's tokens per second
    # (wall clock: does asking for the log-probabilities slow the engine itself?).
    results: dict[str, dict[str, list[float]]] = {
        case: {"cpu_us": [], "tok_s": []} for case in CASES
    }
    count = 0
    try:
        for round_ in range(rounds + 1):  # the first round warms up and is not counted
            for case in CASES if round_ % 2 == 0 else reversed(CASES):
                processor.add_request = register[case]
                start, wall_start = time.process_time(), time.perf_counter()
                tokens = await asyncio.gather(
                    *[
                        _answer(llm, f"r{count}-{i}", ids, logprobs=case != "none")
                        for i, ids in enumerate(prompts)
                    ]
                )
                count += 1
                if round_:
                    cpu_s, wall_s = time.process_time() - start, time.perf_counter() - wall_start
                    results[case]["cpu_us"].append(cpu_s / sum(tokens) * 1e6)
                    results[case]["tok_s"].append(sum(tokens) / wall_s)
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
    print(
        f"{args.streams} streams, median of {args.rounds} rounds (each round's value in brackets)"
    )
    for measure, title, unit in (
        ("cpu_us", "vLLM frontend CPU per token", "µs"),
        ("tok_s", "engine tokens per second (wall clock)", "tok/s"),
    ):
        header = " | ".join(TITLES[case] for case in CASES)
        print(f"\n{title}\n\n| loop | {header} |\n|---|---|---|---|")
        for loop, results in table.items():
            cells = []
            for case in CASES:
                values = results[case][measure]
                rounds = ", ".join(f"{v:.1f}" for v in values)
                cells.append(f"{statistics.median(values):.1f} {unit} ({rounds})")
            print(f"| {loop} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
