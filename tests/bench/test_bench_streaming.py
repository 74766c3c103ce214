"""The streaming bench's own arithmetic: how rounds are paired, merged and compared."""

import asyncio

from bench.bench_streaming import merge_rounds, paired_comparison, paired_rounds


def test_paired_rounds_alternate_which_side_goes_first():
    order: list[str] = []

    async def raw_round():
        order.append("raw")
        return {"side": "raw"}

    async def stack_round():
        order.append("stack")
        return {"side": "stack"}

    raw, stack = asyncio.run(paired_rounds(raw_round, stack_round, 4))
    assert order == ["raw", "stack", "stack", "raw", "raw", "stack", "stack", "raw"]
    assert [r["side"] for r in raw] == ["raw"] * 4
    assert [r["side"] for r in stack] == ["stack"] * 4


def test_merge_rounds_totals_tokens_and_takes_the_median_cpu_of_rounds():
    rounds = [
        {"tokens": 100, "seconds": 1.0, "ttft_ms": [10.0, 30.0], "requests": 2,
         "cpu_cores": {"uvicorn": 0.2, "redis": 0.1}},
        {"tokens": 300, "seconds": 3.0, "ttft_ms": [20.0], "requests": 1,
         "cpu_cores": {"uvicorn": 0.4, "redis": 0.1}},
        {"tokens": 200, "seconds": 1.0, "ttft_ms": [40.0], "requests": 1, "failed": 1,
         "cpu_cores": {"uvicorn": 0.3, "redis": 0.4}},
    ]  # fmt: skip
    merged = merge_rounds(rounds)
    assert merged["tokens_per_s"] == 600 / 5.0
    assert merged["ttft_ms_median"] == 25.0
    assert merged["requests"] == 4
    assert merged["failed"] == 1
    assert merged["cpu_cores"] == {"uvicorn": 0.3, "redis": 0.1}


def test_merge_rounds_of_the_raw_side_has_no_cpu_breakdown():
    merged = merge_rounds([{"tokens": 10, "seconds": 1.0, "ttft_ms": [5.0], "requests": 1}])
    assert "cpu_cores" not in merged
    assert merged["requests"] == 1


def test_paired_comparison_compares_each_pair_on_its_own():
    raw = [{"tokens": 100, "seconds": 1.0, "ttft_ms": [10.0]},
           {"tokens": 100, "seconds": 2.0, "ttft_ms": [20.0]}]  # fmt: skip
    stack = [{"tokens": 90, "seconds": 1.0, "ttft_ms": [15.0]},
             {"tokens": 100, "seconds": 2.0, "ttft_ms": [22.0]}]  # fmt: skip
    result = paired_comparison(raw, stack)
    assert result["throughput_ratios"] == [0.9, 1.0]
    assert result["throughput_ratio_median"] == 0.95
    assert result["ttft_differences_ms"] == [5.0, 2.0]
    assert result["ttft_difference_ms_median"] == 3.5
