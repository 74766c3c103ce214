"""The answer-check restart bench runs both sides on real pools, alternating which goes first."""

from bench import bench_answer_check_restart as bench


def test_both_sides_time_a_real_check_in_alternating_order(monkeypatch):
    order = []
    for name in ("after_a_kill", "fresh_interpreter"):
        real = getattr(bench, name)
        monkeypatch.setattr(
            bench, name, lambda limit_s, real=real, name=name: order.append(name) or real(limit_s)
        )
    times = bench.paired(2, 1.0)
    assert order == ["after_a_kill", "fresh_interpreter", "fresh_interpreter", "after_a_kill"]
    assert all(len(values) == 2 and min(values) > 0 for values in times.values())
