"""What a run of LLM calls used: calls, tokens and cost. The one usage type of every step (ask, eval, generate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops_cli.core.ports import Completion


@dataclass
class Usage:
    """``calls``: calls that reached the LLM (``add``); ``cached``: calls answered from a cache (they cost nothing);
    ``failed``: calls that raised. ``cost`` is None once one call's price is unknown: a sum of the known prices would
    understate the total."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = 0.0
    calls: int = 0
    cached: int = 0
    failed: int = 0
    # what the cached calls cost when they were made (``served``): not spent again, but what they cost a product
    cached_input_tokens: int = 0
    cached_output_tokens: int = 0
    cached_cost: float | None = 0.0

    def add(self, c: Completion) -> None:
        """Count a completed call that reached the LLM."""
        self.input_tokens += c.input_tokens
        self.output_tokens += c.output_tokens
        self.calls += 1
        self.cost = None if (self.cost is None or c.cost is None) else self.cost + c.cost

    def add_cached(self, c: Completion) -> None:
        """Count a call answered from a cache (``c``: the completion as recorded when it reached the LLM)."""
        self.cached += 1
        self.cached_input_tokens += c.input_tokens
        self.cached_output_tokens += c.output_tokens
        self.cached_cost = None if (self.cached_cost is None or c.cost is None) else self.cached_cost + c.cost

    def served(self) -> dict[str, Any]:
        """Tokens and cost of every completion served, from the LLM or from the cache: what the calls cost whoever
        makes them (a matrix compares models by it; a cache must not make a model look free)."""
        cost = None if self.cost is None or self.cached_cost is None else self.cost + self.cached_cost
        return {
            "input_tokens": self.input_tokens + self.cached_input_tokens,
            "output_tokens": self.output_tokens + self.cached_output_tokens,
            "cost": None if cost is None else round(cost, 6),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached": self.cached,
            "failed": self.failed,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": None if self.cost is None else round(self.cost, 6),
        }
