"""The LLM interface: one abstract method (``complete``); async and streaming have working defaults."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llmops_cli.errors import AuthError, ExitCode, LLMError, UnreachableError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass
class Completion:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None  # USD; None when the price is unknown
    latency_s: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)


class LLMCallError(LLMError):
    """One failed call. ``retryable`` is true only for what can succeed on retry (429, 5xx, timeouts, resets)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, hint=hint)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class LLMAuthError(LLMCallError, AuthError):
    """The endpoint rejected the credentials (401/403): an AuthError (exit 8), never retried."""

    exit_code = ExitCode.AUTH


class LLMUnreachableError(LLMCallError, UnreachableError):
    """No connection to the endpoint (refused, unknown host, reset before a response): an UnreachableError (exit 7).
    Retryable: a restarting server comes back."""

    exit_code = ExitCode.UNREACHABLE


class LLM(ABC):
    model: str

    @abstractmethod
    def complete(self, messages: list[Message], **params: Any) -> Completion:
        """One chat completion. Raises LLMCallError."""

    async def acomplete(self, messages: list[Message], **params: Any) -> Completion:
        return await asyncio.to_thread(self.complete, messages, **params)

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        """Yield the answer in pieces; the default yields it whole. ``self.last`` holds the Completion after."""
        c = self.complete(messages, **params)
        self.last = c
        yield c.text
