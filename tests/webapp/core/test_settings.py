"""The settings module refuses to run in production without a SECRET_KEY."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _import_settings(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import webapp.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_debug_off_without_secret_key_fails_clearly():
    result = _import_settings({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_off_with_secret_key_imports():
    result = _import_settings({"DEBUG": "0", "SECRET_KEY": "a" * 50})
    assert result.returncode == 0, result.stderr


def test_development_defaults_need_no_configuration():
    result = _import_settings({})
    assert result.returncode == 0, result.stderr
