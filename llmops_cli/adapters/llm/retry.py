"""The retry policy every LLM client uses: ``llmops_cli.core.retry`` (pure, shared with the batch engine), named
here for the adapters beside it."""

from __future__ import annotations

from llmops_cli.core.retry import (
    CLIENT_MAX_RETRY_AFTER_S,
    RetryPolicy,
    acall_with_retries,
    call_with_retries,
    client_policy,
)

__all__ = ["CLIENT_MAX_RETRY_AFTER_S", "RetryPolicy", "acall_with_retries", "call_with_retries", "client_policy"]
