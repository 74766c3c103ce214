"""The protocol of a held-out evaluation on this site: how many problems per domain and level, the
seed, and the longest answer allowed, and its fingerprint. The per-domain summary the promotion gate
compares is training.scoring.domain_results. The problems and the scoring are training.scoring's
(pure Python); running an engine on a checkpoint is the bridge's (`bridge.held_out_evaluation`)."""

from __future__ import annotations

from django.conf import settings

from training import scoring


def evaluation_options(
    *, n_per_level: int | None = None, max_new_tokens: int | None = None, seed: int | None = None
) -> dict[str, int]:
    """The protocol of an evaluation: training.evaluate's generated held-out sets (every domain
    and level, `n_per_level` problems each) and the longest answer allowed, by default what
    serving allows (settings.INFERENCE["MAX_NEW_TOKENS"]): a longer answer is unfinished and
    scores 0. Defaults may be overridden by settings.REGISTRY_EVALUATION."""
    configured = settings.REGISTRY_EVALUATION
    serving_cap = settings.INFERENCE["MAX_NEW_TOKENS"]
    return {
        "n_per_level": int(n_per_level or configured["N_PER_LEVEL"]),
        "max_new_tokens": int(max_new_tokens or configured.get("MAX_NEW_TOKENS", serving_cap)),
        "seed": int(seed if seed is not None else configured["SEED"]),
    }


def evaluation_fingerprint(options: dict[str, int]) -> str:
    """Equal fingerprints mean comparable evaluations (training.scoring.evaluation_fingerprint:
    the held-out problems' keys and the answer cap)."""
    return scoring.evaluation_fingerprint(
        n_per_level=options["n_per_level"],
        seed=options["seed"],
        max_new_tokens=options.get("max_new_tokens"),
    )
