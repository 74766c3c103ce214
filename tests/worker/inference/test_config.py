"""The worker's configuration: environment variables reach the engine's arguments through the
settings module, the one place that reads them."""

import json
import os
import subprocess
import sys
from pathlib import Path

from worker.inference.config import config_from_settings
from worker.inference.engine import vllm_engine_args

ROOT = Path(__file__).resolve().parents[3]
ENGINE_VARIABLES = (
    "INFERENCE_STREAM_INTERVAL",
    "INFERENCE_MAX_NUM_SEQS",
    "INFERENCE_ENFORCE_EAGER",
)
SHOW_ENGINE = (
    "import json, django; django.setup()\n"
    "from worker.inference.config import config_from_settings\n"
    "e = config_from_settings().engine\n"
    "print(json.dumps([e.stream_interval, e.max_num_seqs, e.enforce_eager, e.max_model_len]))"
)


def _engine_in_a_fresh_process(env_overrides: dict[str, str]) -> list:
    """The engine settings a worker process started with this environment would use."""
    env = {k: v for k, v in os.environ.items() if k not in ENGINE_VARIABLES}
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", SHOW_ENGINE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_engine_settings_come_from_the_environment():
    engine = _engine_in_a_fresh_process(
        {
            "INFERENCE_STREAM_INTERVAL": "6",
            "INFERENCE_MAX_NUM_SEQS": "12",
            "INFERENCE_ENFORCE_EAGER": "yes",
        }
    )
    assert engine[:3] == [6, 12, True]


def test_unset_variables_keep_the_defaults():
    assert _engine_in_a_fresh_process({}) == [1, 64, False, 1024]


def test_the_engine_arguments_follow_the_settings(settings):
    settings.INFERENCE = {
        **settings.INFERENCE,
        "STREAM_INTERVAL": 6,
        "MAX_NUM_SEQS": 12,
        "ENFORCE_EAGER": True,
    }

    engine = config_from_settings().engine

    args = vllm_engine_args("/models/ring-tiny", engine)
    assert (args.stream_interval, args.max_num_seqs, args.enforce_eager) == (6, 12, True)
    assert args.model == args.tokenizer == "/models/ring-tiny"


def test_overrides_replace_fields_of_the_settings_config(settings):
    config = config_from_settings(worker_id="w-test", flush_interval_ms=7)

    assert (config.worker_id, config.flush_interval_ms) == ("w-test", 7)
    assert config.redis_url == settings.REDIS_URL
    assert config.sampling.max_new_tokens == settings.INFERENCE["MAX_NEW_TOKENS"]
