"""The worker's configuration: environment variables reach the engine's arguments."""

from worker.inference.config import config_from_settings
from worker.inference.engine import _engine_args


def test_engine_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("INFERENCE_STREAM_INTERVAL", "6")
    monkeypatch.setenv("INFERENCE_MAX_NUM_SEQS", "12")
    monkeypatch.setenv("INFERENCE_ENFORCE_EAGER", "yes")

    engine = config_from_settings().engine

    assert (engine.stream_interval, engine.max_num_seqs, engine.enforce_eager) == (6, 12, True)
    args = _engine_args("/models/ring-tiny", engine)
    assert (args.stream_interval, args.max_num_seqs, args.enforce_eager) == (6, 12, True)
    assert args.model == args.tokenizer == "/models/ring-tiny"


def test_unset_variables_keep_the_defaults(monkeypatch):
    for name in ("INFERENCE_STREAM_INTERVAL", "INFERENCE_MAX_NUM_SEQS", "INFERENCE_ENFORCE_EAGER"):
        monkeypatch.delenv(name, raising=False)

    engine = config_from_settings().engine

    assert (engine.max_num_seqs, engine.enforce_eager) == (64, False)
    assert engine.stream_interval >= 1
