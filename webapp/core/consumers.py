"""A tiny signed-in consumer that round-trips a message through the channel layer.

Its message goes out through Redis to the group `echo.<user id>` and comes back to every socket of
that user, whichever process holds it. Health checks and the integration tests use it to prove the
channel layer really crosses processes.
"""

from __future__ import annotations

from typing import Any

from webapp.core.websocket import CloseCode, JsonConsumer, signed_in_user


class ChannelLayerEchoConsumer(JsonConsumer):
    async def connect(self) -> None:
        # Who is asking, and the group joined, before the handshake completes: a client whose
        # socket is open is in its group, so a message sent to the group from then on reaches it.
        # Then accept, and refuse with a named code (webapp.core.websocket).
        user = await signed_in_user(self.scope)
        if user is not None:
            self.group_name = f"echo.{user.pk}"
            await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        if user is None:
            await self.close(code=CloseCode.UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    def accepts_messages(self) -> bool:
        return hasattr(self, "group_name")  # signed in (a refused socket has no group)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):  # `{"text": ...}` only
            await self.refuse_message()
            return
        text = str(content.get("text", ""))[:1000]
        await self.channel_layer.group_send(self.group_name, {"type": "echo", "text": text})

    async def echo(self, event: dict) -> None:
        await self.send_json({"type": "echo", "text": event["text"]})
