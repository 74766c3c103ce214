"""The inference worker: vLLM streams solutions to the browsers and swaps checkpoints live.

Run it with `python -m worker.inference`. The site talks to it only through Redis: it appends
requests with `request_queue.enqueue_generation`, sends control messages with `control`, reads the
generation event logs with `event_log.read_log` and the heartbeats written under
`worker.protocol.HEARTBEAT_PREFIX`. Those modules import neither vLLM nor torch; `engine`,
`engine_check` and `worker` do, and only the worker process loads them.
"""
