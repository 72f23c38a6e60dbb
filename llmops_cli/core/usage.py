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

    def add(self, c: Completion) -> None:
        """Count a completed call that reached the LLM."""
        self.input_tokens += c.input_tokens
        self.output_tokens += c.output_tokens
        self.calls += 1
        self.cost = None if (self.cost is None or c.cost is None) else self.cost + c.cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached": self.cached,
            "failed": self.failed,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": None if self.cost is None else round(self.cost, 6),
        }
