"""Small builders for registry tests: versions with evaluation results whose intervals are real
Wilson intervals, so the promotion gate sees the numbers an evaluation would store."""

import math
import os

from webapp.registry.models import Evaluation, EvaluationStatus, ModelVersion, VersionStatus


def wilson(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of correct/n."""
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def domain_result(correct: int, n: int) -> dict:
    low, high = wilson(correct, n)
    return {"accuracy": correct / n, "n": n, "correct": correct, "ci_low": low, "ci_high": high}


def make_version(
    label: str, *, status: str = VersionStatus.CANDIDATE, results: dict | None = None
) -> ModelVersion:
    version = ModelVersion.objects.create(label=label, path=f"/checkpoints/{label}", status=status)
    if results is not None:
        Evaluation.objects.create(
            model_version=version,
            status=EvaluationStatus.DONE,
            results=results,
            problems_fingerprint="same-held-out",
        )
    return version


def make_pool_problems(owner, count: int = 12, *, domain: str = "math") -> list:
    """`count` pool problems (verified numeric references) in one problem set of `owner`, the
    set approved for training (by `owner`, an admin in these tests)."""
    from django.utils import timezone

    from webapp.problems.content_key import problem_content_key
    from webapp.problems.models import Problem, ProblemSet

    problem_set = ProblemSet.objects.create(
        owner=owner,
        title=f"{domain} drills",
        training_approved_by=owner,
        training_approved_at=timezone.now(),
    )
    problems = []
    for i in range(count):
        statement = (
            f"Compute {i + 2} + {3 * i + 1}." if domain == "math" else f"Convert {i + 1} km to m."
        )
        answer = str(4 * i + 3) if domain == "math" else str(1000 * (i + 1))
        problems.append(
            Problem.objects.create(
                problem_set=problem_set,
                created_by=owner,
                position=i,
                statement=statement,
                domain=domain,
                answer_kind="number",
                reference_answer=answer,
                difficulty=1,
                content_key=problem_content_key(statement),
            )
        )
    return problems


def dead_pid() -> int:
    """A process id no process on this machine has (a runner that was killed)."""
    pid = 2**22 - 7
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1
