"""The batch engine's retry policy: the same one every LLM client uses (llmops_cli/core/retry.py).

Only what can succeed on retry is retried (429, 5xx, timeouts, connection errors: ``LLMCallError.retryable``);
a 400 becomes the row's error at once. Waits grow exponentially with jitter, and are never shorter than the
server's Retry-After.
"""

from __future__ import annotations

from llmops_cli.core.retry import RetryPolicy

__all__ = ["RetryPolicy"]
