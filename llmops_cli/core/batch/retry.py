"""When and how long to retry a failed call.

Only what can succeed on retry is retried (429, 5xx, timeouts, connection errors: ``LLMCallError.retryable``);
a 400 becomes the row's error at once. Waits grow exponentially with jitter, and are never shorter than the
server's Retry-After.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # calls per request, the first included
    base_delay_s: float = 0.5
    multiplier: float = 2.0
    max_delay_s: float = 30.0
    jitter: float = 0.25  # up to +25 %, so that workers failed together do not retry together
    max_retry_after_s: float = 600.0  # a longer Retry-After is not honoured literally
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.multiplier < 1 or self.max_delay_s < 0:
            raise ValueError("delays must be non-negative and the multiplier at least 1")

    def should_retry(self, retryable: bool, attempt: int) -> bool:
        """``attempt`` is the number of calls made so far for this request."""
        return retryable and attempt < self.max_attempts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failed call."""
        backoff = min(self.max_delay_s, self.base_delay_s * self.multiplier ** max(0, attempt - 1))
        backoff *= 1.0 + self.jitter * self.rand()
        if retry_after is not None and retry_after > 0:
            return max(min(retry_after, self.max_retry_after_s), backoff)
        return backoff
