"""The settings module's defaults are safe: DEBUG off, and a secret key of the checkout's own."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _import_settings(
    env_overrides: dict, code: str = "import webapp.settings", cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_debug_is_off_unless_asked_for():
    result = _import_settings(
        {"SECRET_KEY": "a" * 50}, "from webapp import settings as s; print(s.DEBUG)"
    )
    assert result.stdout.strip() == "False", result.stderr
    result = _import_settings(
        {"SECRET_KEY": "a" * 50, "DEBUG": "1"}, "from webapp import settings as s; print(s.DEBUG)"
    )
    assert result.stdout.strip() == "True", result.stderr


def test_without_secret_key_a_private_key_is_generated_once_under_var(tmp_path):
    # The settings module under a copy of the tree, so the checkout's own var/ is left alone.
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "settings.py").write_text((ROOT / "webapp" / "settings.py").read_text())
    show = (
        "import sys; sys.path.insert(0, '.'); from webapp import settings as s; print(s.SECRET_KEY)"
    )
    first = _import_settings({"DEBUG": "0"}, show, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.read_text().strip() == first.stdout.strip()
    assert len(first.stdout.strip()) >= 50
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    second = _import_settings({"DEBUG": "0"}, show, cwd=tmp_path)
    assert second.stdout == first.stdout  # sessions survive a restart


def test_the_published_development_key_is_refused_with_debug_off():
    result = _import_settings(
        {"DEBUG": "0", "SECRET_KEY": "dev-only-insecure-secret-key-change-me"}
    )
    assert result.returncode != 0
    assert "SECRET_KEY must not be" in result.stderr


def test_debug_off_with_secret_key_imports():
    result = _import_settings({"DEBUG": "0", "SECRET_KEY": "a" * 50})
    assert result.returncode == 0, result.stderr


def test_development_defaults_need_no_configuration():
    result = _import_settings({})
    assert result.returncode == 0, result.stderr
