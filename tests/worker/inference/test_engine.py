"""engine.skip_logprob_decoding against stand-ins of vLLM's frontend (the real one is in
test_engine_integration.py): what it changes on a frontend of the expected shape, and that any
other frontend is left as it is."""

from types import SimpleNamespace

from worker.inference.engine import skip_logprob_decoding


class _Frontend:
    """vLLM 0.32's `OutputProcessor` as far as the function touches it."""

    def __init__(self) -> None:
        self.request_states: dict[str, SimpleNamespace] = {}
        self.registered: list[tuple[str, tuple]] = []

    def add_request(self, request, *args) -> None:
        self.registered.append((request.request_id, args))
        processor = SimpleNamespace(tokenizer="the tokenizer")
        self.request_states[request.request_id] = SimpleNamespace(logprobs_processor=processor)


def test_each_new_request_keeps_its_registration_but_not_its_logprob_tokenizer():
    frontend = _Frontend()
    llm = SimpleNamespace(output_processor=frontend)

    assert skip_logprob_decoding(llm)
    frontend.add_request(SimpleNamespace(request_id="r1"), "prompt", None, 0)

    assert frontend.registered == [("r1", ("prompt", None, 0))]
    assert frontend.request_states["r1"].logprobs_processor.tokenizer is None


def test_a_frontend_of_another_shape_is_left_alone(caplog):
    unknown = SimpleNamespace(output_processor=SimpleNamespace(add_request=print))

    assert not skip_logprob_decoding(unknown)
    assert not skip_logprob_decoding(SimpleNamespace())
    assert unknown.output_processor.add_request is print
    assert "stay decoded" in caplog.text
