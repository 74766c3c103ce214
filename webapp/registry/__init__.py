"""The model registry and fine-tuning: model versions, training jobs, their metrics, evaluations and
promotions."""
