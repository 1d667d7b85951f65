"""A stored dataset's lines as the code that reads them back sees them: the one model of a line
for everything that reads a dataset Burro has already checked (the local models' token
counter, the trainer). Fields Burro's checks allow but these readers ignore are left out."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "CHAT_LINE",
    "PREFERENCE_LINE",
    "ChatLine",
    "PreferenceLine",
    "StoredMessage",
    "TemplateMessage",
]

TemplateMessage = dict[str, Any]
"""A message as a chat template takes it (what transformers' `apply_chat_template` renders)."""


class StoredMessage(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    weight: int | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None

    def for_template(self, text: str) -> TemplateMessage:
        """The message as a chat template takes it, with `text` as its content (the caller
        decides what a list of parts becomes)."""
        plain: TemplateMessage = {"role": self.role, "content": text}
        if self.name is not None:
            plain["name"] = self.name
        if self.tool_calls is not None:
            plain["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            plain["tool_call_id"] = self.tool_call_id
        return plain


class ChatLine(msgspec.Struct):
    messages: list[StoredMessage]
    tools: list[Any] | None = None


class PreferenceInput(msgspec.Struct):
    messages: list[StoredMessage]
    tools: list[Any] | None = None


class PreferenceLine(msgspec.Struct):
    input: PreferenceInput
    preferred_output: list[StoredMessage]
    non_preferred_output: list[StoredMessage]


CHAT_LINE = msgspec.json.Decoder(ChatLine)
PREFERENCE_LINE = msgspec.json.Decoder(PreferenceLine)
