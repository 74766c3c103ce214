"""docker-compose.yml is consistent with the project, checked without a Docker engine.

Every service has an image or a build, every depends_on names a service, the inference worker has a
CPU and a GPU profile, and every command runs one of the project's real entry points.
"""

import importlib.util
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _command_words(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def _module_exists(dotted: str) -> bool:
    return importlib.util.find_spec(dotted) is not None


def _entry_points_of(words: list[str]) -> list[str]:
    """The project entry points a command names, as problems found ([] when all exist)."""
    if words[:2] == ["sh", "-c"]:
        problems = []
        for part in words[2].split("&&"):
            problems += _entry_points_of(shlex.split(part))
        return problems
    if words[:2] == ["python", "manage.py"]:
        return [] if words[2] in get_commands() else [f"no management command {words[2]!r}"]
    if words[:2] == ["python", "-m"]:
        return [] if _module_exists(words[2]) else [f"no module {words[2]!r}"]
    if words[0] == "uvicorn":
        module, _, attribute = words[1].partition(":")
        if not _module_exists(module):
            return [f"no ASGI module {module!r}"]
        return [] if attribute == "application" else [f"unexpected ASGI attribute {attribute!r}"]
    if words[0] == "celery":
        app = words[words.index("-A") + 1]
        queues = words[words.index("-Q") + 1].split(",") if "-Q" in words else []
        problems = [] if _module_exists(app) else [f"no Celery app module {app!r}"]
        return problems + [
            f"unknown queue {q!r}" for q in queues if q not in {"default", "training"}
        ]
    if words[0] == "redis-server":
        return []
    return [f"unrecognised command {words!r}"]


def test_required_services_exist():
    expected = {"postgres", "redis", "web", "inference-cpu", "inference-gpu"}
    expected |= {"celery-default", "celery-training"}
    assert expected <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_image_or_build(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_names_services(name):
    depends = SERVICES[name].get("depends_on", {})
    names = depends if isinstance(depends, list) else list(depends)
    assert set(names) <= set(SERVICES), f"{name} depends on unknown {set(names) - set(SERVICES)}"


@pytest.mark.parametrize("name", sorted(n for n in SERVICES if "command" in SERVICES[n]))
def test_commands_are_real_entry_points(name):
    assert _entry_points_of(_command_words(SERVICES[name])) == []


def test_inference_profiles_and_checkpoint_volume():
    assert SERVICES["inference-cpu"]["profiles"] == ["cpu"]
    assert SERVICES["inference-gpu"]["profiles"] == ["gpu"]
    assert SERVICES["inference-gpu"]["build"]["args"]["PROFILE"] == "gpu"
    assert "checkpoints" in COMPOSE["volumes"]
    for name in ("web", "inference-cpu", "celery-training"):
        assert any("checkpoints" in v for v in SERVICES[name]["volumes"])


def test_long_running_services_have_health_checks():
    for name in ("postgres", "redis", "web", "inference-cpu", "inference-gpu"):
        assert "healthcheck" in SERVICES[name], name


def test_dockerfile_profiles_match_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements/lock-cpu.txt" in dockerfile
    assert "requirements/gpu.in" in dockerfile
    assert (ROOT / "requirements" / "lock-cpu.txt").exists()


def _queues(words: list[str]) -> list[str]:
    return words[words.index("-Q") + 1].split(",")


def test_default_and_training_queues_have_their_own_workers():
    # A training job runs for half an hour or more: it must not hold up upload answer checks.
    assert _queues(_command_words(SERVICES["celery-default"])) == ["default"]
    assert _queues(_command_words(SERVICES["celery-training"])) == ["training"]
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    celery = [shlex.split(cmd) for cmd in procfile.values() if "celery" in cmd]
    assert sorted(tuple(_queues(words)) for words in celery) == [("default",), ("training",)]
    for words in celery:
        assert "-n" in words  # two workers on one host need different node names


def test_the_site_connects_to_postgres_as_a_role_that_is_not_the_superuser():
    postgres = SERVICES["postgres"]
    superuser = postgres["environment"]["POSTGRES_USER"]
    app_user = postgres["environment"]["APP_DB_USER"]
    assert app_user != superuser
    database_url = COMPOSE["x-app"]["environment"]["DATABASE_URL"]
    assert database_url.startswith(f"postgres://{app_user}:")
    init = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init, "no init script creates the application role"
    script = (ROOT / init[0].split(":")[0]).read_text()
    assert "NOSUPERUSER" in script and "NOCREATEROLE" in script
    assert "OWNER TO" in script


def test_redis_requires_a_password_and_the_site_sends_it():
    redis = SERVICES["redis"]
    words = _command_words(redis)
    assert "--requirepass" in words
    assert words[words.index("--requirepass") + 1].startswith("${REDIS_PASSWORD")
    assert COMPOSE["x-app"]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
    assert "REDISCLI_AUTH" in redis["environment"]  # the health check authenticates too


def _dockerfile_cmd() -> list[str]:
    (line,) = [x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("CMD ")]
    return yaml.safe_load(line.removeprefix("CMD "))


def test_every_way_the_site_is_served_goes_through_webapp_serve():
    # One launcher holds the options every deployment needs (webapp.serve), so none of the ways
    # the site is started can drift from the others.
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    commands = {
        "Procfile web": shlex.split(procfile["web"]),
        "Dockerfile CMD": _dockerfile_cmd(),
        "docker-compose web": _command_words(SERVICES["web"]),
    }
    for name, words in commands.items():
        assert words[0].endswith("python") and words[1:3] == ["-m", "webapp.serve"], name
        assert not any(w.endswith("uvicorn") for w in words), name


def test_the_site_keeps_an_idle_connection_past_a_pause_between_clicks():
    # uvicorn's default (5 s) closes a student's connection while they read an answer: the next
    # click pays a new connection (and TLS handshake), and a client that sends on the socket as
    # the server closes it reads a reset. Browsers keep idle connections 115-300 s.
    from uvicorn.main import main as uvicorn_command

    from webapp.serve import uvicorn_args

    context = uvicorn_command.make_context("webapp.serve", uvicorn_args(["--port", "8000"]))
    assert context.params["app"] == "webapp.asgi:application"
    assert context.params["timeout_keep_alive"] >= 60
    assert context.params["port"] == 8000  # the caller's options still reach uvicorn
