"""Private data at ingest: what ``ingest.privacy`` does to a source before anything of it is chunked, embedded,
stored or logged, and the prompt-injection text flagged on the way.

- ``off``: sources are stored as they are (the default: a collection's chunks do not change on upgrade);
- ``redact``: secrets and personal data are replaced by ``[REDACTED_<KIND>]`` (the detector of ``core.redaction``,
  the same one that cleans promoted answers), the rest of the source is ingested;
- ``skip``: a source holding any is left out and listed as skipped (the run exits 3, partial).

The report counts what was found per kind (``API_KEY: 2, EMAIL: 1``), never the values. Text that reads as an
instruction to the model ("ignore previous instructions...") is counted, whatever the policy, and its chunks carry
``prompt_injection: true`` in their metadata.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from llmops_cli.core.redaction import count_sensitive

Policy = Literal["off", "redact", "skip"]
POLICIES: tuple[str, ...] = ("off", "redact", "skip")
INJECTION_KEY = "prompt_injection"

# Phrases that address the model rather than the reader: overriding its instructions, changing its role, asking for
# its prompt or secrets. Documentation that talks ABOUT prompts ("the system prompt is...") is not matched: each
# phrase needs the imperative shape.
_INJECTION = re.compile(
    r"(?i)\b(?:"
    r"(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|preceding|"
    r"your|system)\s+(?:instructions|prompts?|rules|directions|context)"
    r"|you\s+are\s+now\s+(?:a|an|in)\s+\w+"
    r"|(?:reveal|print|show|repeat|output)\s+(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions|instructions)"
    r"|(?:new|updated)\s+instructions\s*:"
    r"|do\s+not\s+follow\s+(?:your|the)\s+(?:previous|original)\s+instructions"
    r")"
)


def injection_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds instruction-like phrases aimed at the model."""
    return [m.span() for m in _INJECTION.finditer(text)]


@dataclass
class PrivacyTally:
    """What the policy found in one run: per kind of sensitive data, and prompt-injection phrases."""

    policy: str = "off"
    found: Counter = field(default_factory=Counter)
    sources: int = 0  # sources that held sensitive data
    injection: int = 0  # chunks flagged as prompt injection

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "found": dict(sorted(self.found.items())),
            "sources": self.sources,
            "prompt_injection": self.injection,
        }


def apply_policy(text: str, policy: str) -> tuple[str | None, dict[str, int]]:
    """``text`` as the policy leaves it (None: the source is to be skipped) and what was found, per kind."""
    if policy == "off":
        return text, {}
    redacted, counts = count_sensitive(text)
    if not counts:
        return text, {}
    return (None if policy == "skip" else redacted), counts


def describe(counts: dict[str, int]) -> str:
    """``2 API_KEY, 1 EMAIL``: the kinds and how many, for a skip reason or a summary line (no values)."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
