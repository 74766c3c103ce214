"""The inference worker: vLLM streams solutions to the browsers and swaps checkpoints live.

Run it with `python -m worker.inference`. The site talks to it only through Redis, with the
`inference_contract` package: it appends requests with `request_queue.enqueue_generation`, sends
control messages with `control`, reads the generation event logs with `event_log.read_log` and the
heartbeats written under `protocol.HEARTBEAT_PREFIX`. The site imports nothing from here; `engine`,
`engine_check` and `worker` import vLLM and torch, and only the worker process loads them.
"""
