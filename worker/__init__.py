"""The inference worker process (`python -m worker.inference`): vLLM serves the champion model and
streams answers to the site. What it shares with the site over Redis is in `inference_contract`; the
site's Celery application is `webapp.celery`."""
