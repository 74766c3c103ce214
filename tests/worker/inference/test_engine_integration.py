"""The worker's `VllmEngine` on a real vLLM engine (ring-tiny): the log-probabilities the answer's
confidence needs come without vLLM decoding each entry to text (engine.skip_logprob_decoding), and
that changes neither the numbers nor the answer's text."""

from pathlib import Path

import pytest

from worker.inference.config import config_from_settings
from worker.inference.engine import ModelSpec, VllmEngine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHECKPOINT = Path(__file__).resolve().parents[3] / "checkpoints" / "ring-tiny"


async def _vllm_default(engine: VllmEngine, request_id: str, prompt_ids: list[int], *, decoded):
    """The same greedy request straight through vLLM's own path: text, logprob entries."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    processor = engine.llm.output_processor
    skipping = processor.add_request
    if decoded:  # vLLM's own registration, as before the worker's change
        processor.add_request = type(processor).add_request.__get__(processor)
    try:
        params = SamplingParams(
            max_tokens=40, temperature=0.0, logprobs=0, output_kind=RequestOutputKind.FINAL_ONLY
        )
        final = None
        async for output in engine.llm.generate(
            engine._engine_input(prompt_ids), params, request_id
        ):
            final = output
    finally:
        processor.add_request = skipping
    assert final is not None
    return final.outputs[0]


async def test_the_engine_streams_confidence_numbers_without_decoding_them_again():
    settings = config_from_settings().engine
    engine = await VllmEngine.start(ModelSpec(None, "ring-tiny", str(CHECKPOINT)), settings)
    try:
        prompt_ids = engine.prompt_ids("Compute 47 + 38.")
        chunks = [
            chunk
            async for chunk in engine.stream(
                "streamed", prompt_ids, max_tokens=40, temperature=0.0, top_p=1.0
            )
        ]
        undecoded = await _vllm_default(engine, "undecoded", prompt_ids, decoded=False)
        decoded = await _vllm_default(engine, "decoded", prompt_ids, decoded=True)
    finally:
        await engine.shutdown()

    # vLLM's default decodes every entry; the worker's engine leaves them as numbers only.
    assert all(entry[token].decoded_token is not None for token, entry in _entries(decoded))
    assert all(entry[token].decoded_token is None for token, entry in _entries(undecoded))
    # The same numbers and the same text as vLLM's default, and what the worker streams is them.
    assert [e[t].logprob for t, e in _entries(undecoded)] == [
        e[t].logprob for t, e in _entries(decoded)
    ]
    assert undecoded.text == decoded.text and undecoded.token_ids == decoded.token_ids
    assert "".join(chunk.text for chunk in chunks) == decoded.text
    streamed = [value for chunk in chunks for value in chunk.logprobs]
    assert streamed == [e[t].logprob for t, e in _entries(decoded)]
    assert len(streamed) == len(decoded.token_ids) > 0


def _entries(completion):
    return list(zip(completion.token_ids, completion.logprobs, strict=True))
