"""C3PO reinforcement learning for Ring models: the loss maths, the trainer, data and staging.

`core_algos` holds the pure maths, `trainer` the RL loop, `data` the prompt curation,
`start_checkpoint` the entropy-based choice of where RL starts, and `pipeline` the staged job that
the Celery task runs (`pipeline.run_job`). Nothing here imports Django.
"""
