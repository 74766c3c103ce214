"""Background processes: the Celery application (queues `default` and `training`) and the inference
worker that serves the champion model with vLLM."""
