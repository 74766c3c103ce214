"""The contract between the site and the inference workers, which talk only through Redis.

Neither side owns it: `webapp` (the site) and `worker` (the inference process) both import it, and
it imports neither of them, nor Django, vLLM or torch.

- `protocol`: every Redis name (queue, heartbeats, event logs, pub/sub channels) and message shape;
- `request_queue`: the durable generation queue (the site enqueues, the workers claim and ack);
- `event_log`: each generation's events in a stream of its own (the worker and the site append,
  the page's socket reads);
- `control`: swap and cancel messages from the site, and the swap results the workers report;
- `redis_retry`: the retry policy every Redis client of both sides uses (a restart waits, not fails).

The events themselves (`status`, `delta`, `snapshot`, `done`, `error`) are the tutoring page's
format, built by `webapp.tutoring.events` for the site and the worker alike.
"""
