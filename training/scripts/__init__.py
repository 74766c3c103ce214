"""Entry points of the training package (run with `python -m training.scripts.<name>`)."""
