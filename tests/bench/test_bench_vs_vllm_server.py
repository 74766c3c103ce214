"""Unit tests of bench/bench_vs_vllm_server.py's pure parts: rebuilding a page's text from the
events it received, the first visible text, `INFO commandstats` deltas, server-sent-event parsing,
the prompts, each worker's engine cores, the page flows a stack client alternates, and the pairing and median-of-pairs
arithmetic it shares with bench_streaming."""

import pytest

from bench.bench_streaming import paired_comparison, paired_rounds
from bench.bench_vs_vllm_server import (
    PROMPTS,
    Outcome,
    commandstats_delta,
    engine_core_envs,
    first_text_index,
    page_flow_for,
    page_generation,
    parse_args,
    rebuild,
    side_summary,
    sse_payloads,
    ttft_by_flow,
    without_own_reads,
)


def snapshot(seq, reasoning="", answer=""):
    return {"type": "snapshot", "seq": seq, "reasoning": reasoning, "answer": answer}


def delta(seq, text, channel="reasoning"):
    return {"type": "delta", "seq": seq, "channel": channel, "text": text}


DONE = {"type": "done", "status": "done", "seq": 3}


def test_rebuild_applies_snapshot_then_deltas_per_channel():
    rebuilt = rebuild(
        [snapshot(0), delta(1, "Add "), delta(2, "them."), delta(3, "85", "answer"), DONE]
    )
    assert (rebuilt.reasoning, rebuilt.answer) == ("Add them.", "85")
    assert rebuilt.problems == []
    assert rebuilt.done == DONE


def test_rebuild_from_a_late_snapshot_needs_no_deltas():
    rebuilt = rebuild([snapshot(3, "Add them.", "85"), DONE])
    assert (rebuilt.reasoning, rebuilt.answer, rebuilt.problems) == ("Add them.", "85", [])


def test_rebuild_reports_a_skipped_delta_and_keeps_the_text_it_got():
    rebuilt = rebuild([snapshot(0), delta(1, "Add "), delta(3, "85", "answer"), DONE])
    assert rebuilt.problems == ["delta 3 after 1"]
    assert (rebuilt.reasoning, rebuilt.answer) == ("Add ", "85")


def test_rebuild_reports_a_repeated_delta_and_events_after_done():
    rebuilt = rebuild([snapshot(0), delta(1, "A"), delta(1, "A"), DONE, delta(2, "B")])
    assert rebuilt.problems == ["delta 1 after 1", "delta after done"]
    assert rebuilt.reasoning == "AA"


def test_rebuild_reports_an_older_snapshot():
    assert rebuild([snapshot(2, "ab"), snapshot(1, "a")]).problems == ["older snapshot 1 after 2"]


def test_first_text_index_skips_empty_snapshots_and_statuses():
    events = [snapshot(0), {"type": "status", "status": "running"}, delta(1, "A")]
    assert first_text_index(events) == 2
    assert first_text_index([snapshot(2, "", "85")]) == 0
    assert first_text_index([snapshot(0), DONE]) is None


def test_commandstats_delta_counts_new_calls_and_leaves_out_info():
    before = {"cmdstat_xadd": {"calls": 10, "usec": 5}, "cmdstat_info": {"calls": 4}}
    after = {
        "cmdstat_xadd": {"calls": 25, "usec": 9},
        "cmdstat_xread": {"calls": 7, "usec": 1},
        "cmdstat_info": {"calls": 6},
        "cmdstat_get": {"calls": 0},
    }
    assert commandstats_delta(before, after) == {"xadd": 15, "xread": 7}


def test_the_benchs_own_heartbeat_reads_are_not_counted_as_the_stacks():
    calls = {"xadd": 40, "get": 12, "xread": 30}
    assert without_own_reads(calls, 9) == {"xadd": 40, "get": 3, "xread": 30}
    assert without_own_reads(calls, 12) == {"xadd": 40, "xread": 30}
    # a read cancelled at the round's end never reached Redis: never below zero
    assert without_own_reads({"xadd": 1}, 1) == {"xadd": 1}


def test_sse_payloads_reads_data_lines_and_stops_at_done():
    lines = ['data: {"choices": [{"text": "A"}]}', "", ": comment", "data: [DONE]"]
    assert sse_payloads(lines) == [{"choices": [{"text": "A"}]}]


def test_forty_distinct_prompts():
    assert len(PROMPTS) == len(set(PROMPTS)) == 40


async def test_pairs_alternate_which_side_goes_first():
    order = []

    async def server():
        order.append("server")
        return {}

    async def stack():
        order.append("stack")
        return {}

    await paired_rounds(server, stack, 3)
    assert order == ["server", "stack", "stack", "server", "server", "stack"]


def test_paired_comparison_takes_the_median_of_per_pair_ratios():
    server = [
        {"tokens": 100, "seconds": 1.0, "ttft_ms": [10, 20, 30]},
        {"tokens": 200, "seconds": 1.0, "ttft_ms": [10]},
        {"tokens": 100, "seconds": 2.0, "ttft_ms": [40]},
    ]
    stack = [
        {"tokens": 50, "seconds": 1.0, "ttft_ms": [120]},
        {"tokens": 200, "seconds": 1.0, "ttft_ms": [30, 50]},
        {"tokens": 100, "seconds": 1.0, "ttft_ms": [40]},
    ]
    paired = paired_comparison(server, stack)
    assert paired["throughput_ratios"] == [0.5, 1.0, 2.0]
    assert paired["throughput_ratio_median"] == 1.0
    assert paired["ttft_differences_ms"] == [100.0, 30.0, 0.0]
    assert paired["ttft_difference_ms_median"] == 30.0


# --- page flows (the ask POST's answer inline, or the redirect and the attempt page's GET) -----


def test_page_flow_is_the_choice_or_alternates_from_client_to_client():
    assert [page_flow_for("inline", 0, turn) for turn in range(3)] == ["inline"] * 3
    assert [page_flow_for("redirect", 1, turn) for turn in range(2)] == ["redirect"] * 2
    # One client: inline, redirect, inline, ...; its neighbour starts with the other one.
    assert [page_flow_for("both", 0, turn) for turn in range(4)] == [
        "inline", "redirect", "inline", "redirect",
    ]  # fmt: skip
    assert [page_flow_for("both", client, 0) for client in range(3)] == [
        "inline", "redirect", "inline",
    ]  # fmt: skip


ARTICLE = (
    '<article class="generation" id="generation-{pk}" data-generation-id="{pk}" '
    'data-kind="solution" data-status="{status}" data-ws-path="/ws/generations/{pk}/">'
)


def test_the_page_generation_is_the_unfinished_one_or_else_the_newest():
    page = ARTICLE.format(pk=7, status="done") + ARTICLE.format(pk=9, status="queued")
    assert page_generation(page) == (9, "queued")
    assert page_generation("<title>t</title>" + ARTICLE.format(pk=4, status="running")) == (
        4,
        "running",
    )
    # Finished before the page was rendered: its text is in the markup, no socket is opened.
    finished = ARTICLE.format(pk=7, status="failed") + ARTICLE.format(pk=8, status="done")
    assert page_generation(finished) == (8, "done")
    with pytest.raises(ValueError, match="no generation in the page"):
        page_generation("<article class='note'>")


def test_first_text_per_flow_and_its_medians_over_rounds():
    outcomes = [
        Outcome(0, first_text_ms=50.0, page_flow="inline"),
        Outcome(1, first_text_ms=90.0, page_flow="redirect"),
        Outcome(2, first_text_ms=None, page_flow="inline"),
        Outcome(3, first_text_ms=70.0, page_flow="inline"),
    ]
    assert ttft_by_flow(outcomes) == {"inline": [50.0, 70.0], "redirect": [90.0]}
    rounds = [
        {"tokens": 10, "seconds": 1.0, "ttft_ms": [50.0, 90.0, 70.0], "requests": 4,
         "ttft_ms_by_flow": ttft_by_flow(outcomes), "errors": [], "redis_commands": {},
         "engine_cpu_ms_per_token": None, "non_engine_cpu_ms_per_token": None,
         "pg_commits_per_generation": None, "redis_commands_per_generation": None},
        {"tokens": 10, "seconds": 1.0, "ttft_ms": [30.0], "requests": 1,
         "ttft_ms_by_flow": {"redirect": [30.0]}, "errors": [], "redis_commands": {},
         "engine_cpu_ms_per_token": None, "non_engine_cpu_ms_per_token": None,
         "pg_commits_per_generation": None, "redis_commands_per_generation": None},
    ]  # fmt: skip
    assert side_summary(rounds)["ttft_ms_median_by_flow"] == {"inline": 60.0, "redirect": 60.0}


def test_each_stack_worker_gets_its_engine_cores_or_the_auto_binding():
    assert engine_core_envs("", 2) is None
    assert engine_core_envs("0;1", 2) == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0"},
        {"VLLM_CPU_OMP_THREADS_BIND": "1"},
    ]
    assert engine_core_envs("0,1,2;3-5", 2)[0] == {"VLLM_CPU_OMP_THREADS_BIND": "0-2"}
    with pytest.raises(ValueError, match="2 CPU lists for 3 workers"):
        engine_core_envs("0;1", 3)
    with pytest.raises(ValueError):
        engine_core_envs("0;x", 2)


def test_engine_cores_per_worker_are_refused_with_the_apart_layout():
    # apart keeps the last core for the web tier; an engine bound there would break the layout.
    assert (
        parse_args(["--stack-engine-cores", "0;1", "--cpu-layout", "shared"]).cpu_layout == "shared"
    )
    with pytest.raises(SystemExit):
        parse_args(["--stack-engine-cores", "0;1"])
