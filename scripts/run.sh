#!/usr/bin/env bash
# Run the whole site locally on its embedded defaults: set up what is missing, find Redis and a
# database, migrate, create the demo users and problem set, then start the web server, the inference
# worker and the Celery workers together (honcho + Procfile).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8000}
export PORT
# Production-safe by default: no debug pages (DEBUG=1 turns them on), and the secret key is this
# checkout's own, generated into var/secret_key by the settings on first start. The site is
# served over plain HTTP on the loopback address, so its cookies cannot be HTTPS-only here.
export DEBUG=${DEBUG:-0}
export SECURE_COOKIES=${SECURE_COOKIES:-0}

scripts/setup.sh

# --- Redis: required (channel layer, Celery broker, generation queue) ---------------------------
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
redis_up() { .venv/bin/python -c "import redis,sys; redis.Redis.from_url('$REDIS_URL', socket_connect_timeout=1).ping()" 2>/dev/null; }
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "==> Redis is not reachable at $REDIS_URL: starting a local redis-server"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    sleep 1
  fi
  if ! redis_up; then
    echo "ERROR: Redis is not reachable at $REDIS_URL."
    echo "  Install and start it (Debian/Ubuntu: sudo apt-get install redis-server && sudo service redis-server start),"
    echo "  or point REDIS_URL at a running Redis, then run this command again."
    exit 1
  fi
fi

# --- Database: DATABASE_URL if set, else the local PostgreSQL if reachable, else SQLite ----------
if [ -z "${DATABASE_URL:-}" ]; then
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='ringtutor'" 2>/dev/null | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE ringtutor" 2>/dev/null || true
    if psql -h 127.0.0.1 -U postgres -d ringtutor -qc "SELECT 1" >/dev/null 2>&1; then
      export DATABASE_URL=postgres://postgres@127.0.0.1:5432/ringtutor
    fi
  fi
fi
if [ -n "${DATABASE_URL:-}" ]; then
  echo "==> database: $DATABASE_URL"
else
  echo "==> database: SQLite at var/db.sqlite3 (set DATABASE_URL to use PostgreSQL)"
fi

.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py seed_demo

echo
echo "==> Ring Tutor is starting at http://127.0.0.1:$PORT/  (health: http://127.0.0.1:$PORT/healthz)"
if [ "$DEBUG" = "0" ]; then
  echo "    DEBUG is off (set DEBUG=1 for Django's debug pages); secret key: var/secret_key"
fi
echo "    The inference worker needs ~1 minute to load the model; Ctrl-C stops everything."
echo
exec .venv/bin/honcho start -f Procfile -p "$PORT"
