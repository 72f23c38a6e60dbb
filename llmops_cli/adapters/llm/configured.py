"""The settings every LLM client takes (``wiring._client_options``): endpoint, key, sampling defaults, timeout,
retries and prices, held the same way by each."""

from __future__ import annotations

import threading
from typing import Any

from llmops_cli.core.ports import LLM, Completion


class ConfiguredLLM(LLM):
    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        input_cost_per_token: float | None = None,
        output_cost_per_token: float | None = None,
    ):
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.defaults: dict[str, Any] = {"temperature": temperature}
        if max_tokens:
            self.defaults["max_tokens"] = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.prices = (input_cost_per_token, output_cost_per_token)
        self._local = threading.local()  # per thread: `llmops serve` streams many answers through one client

    @property
    def last(self) -> Completion | None:
        """The Completion of this thread's last ``stream`` (threads stream at once through one client, and each
        reads back its own answer's tokens and cost)."""
        return getattr(self._local, "last", None)

    @last.setter
    def last(self, value: Completion | None) -> None:
        self._local.last = value
