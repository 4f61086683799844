"""When the EHR transport retries, and how long it waits (SECURITY.md RL-01 and RL-02).

Reads (GET) are retried with tenacity on 429/502/503/504 and on transport failures (connection
refused or reset, timeouts), at most ``RetryPolicy.max_attempts`` times. The wait honours
``Retry-After`` (delta-seconds or an HTTP-date) when upstream sends one, and otherwise is
exponential backoff with full jitter. A ``Retry-After`` longer than ``max_retry_after_s``, or one
that would push the total sleep past ``max_total_wait_s``, stops the retries at once with no
sleep: the caller gets the rate-limit error naming the time instead of a page that hangs.

Writes are never retried here except when the request certainly never left this machine: see
``never_sent`` and ``retryable_connect_failure``.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
import tenacity
import urllib3.exceptions

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "backoff_seconds",
    "is_transient_read_failure",
    "never_sent",
    "read_retrying",
    "retry_after_seconds",
    "retryable_connect_failure",
]

# Statuses worth another try for a read: throttled, or a gateway/overload answer that usually
# clears within seconds. 500 is left out: it is usually a deterministic server bug.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Attempts per read, the first included (SECURITY.md RL-01: "at most 4 attempts").
DEFAULT_MAX_ATTEMPTS = 4
# First backoff ceiling; it doubles per attempt (full jitter draws uniformly below it).
DEFAULT_BACKOFF_BASE_S = 1.0
# Largest single backoff sleep (RL-01).
DEFAULT_BACKOFF_CAP_S = 60.0
# Longest total sleep for one read: an interactive page should fail with a clear message
# rather than spin for minutes.
DEFAULT_MAX_TOTAL_WAIT_S = 90.0
# A Retry-After beyond this is not waited for at all: the caller gets RateLimitedError(retry_at).
DEFAULT_MAX_RETRY_AFTER_S = 300.0
# Attempts for a write whose connection could not even be opened (RL-02: only then may it retry).
DEFAULT_WRITE_CONNECT_ATTEMPTS = 3
# More digits than this cannot be a sensible delay (and int() of thousands of digits is slow).
_MAX_RETRY_AFTER_DIGITS = 12
_SIGNED_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of the retry behaviour; the defaults are SECURITY.md RL-01's numbers."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base_s: float = DEFAULT_BACKOFF_BASE_S
    backoff_cap_s: float = DEFAULT_BACKOFF_CAP_S
    max_total_wait_s: float = DEFAULT_MAX_TOTAL_WAIT_S
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S
    write_connect_attempts: int = DEFAULT_WRITE_CONNECT_ATTEMPTS


class StatusReply(Protocol):
    """What the retry logic reads from an HTTP answer."""

    @property
    def status(self) -> int:
        """The HTTP status code."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (case-insensitive mapping)."""
        ...


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait per a ``Retry-After`` header value, or None when absent or garbage.

    Delta-seconds and HTTP-dates are accepted. A negative number means "now" (0.0); a date in
    the past gives 0.0; an absurdly long number gives ``math.inf`` (never waited for). ``now``
    must be timezone-aware. Garbage such as ``"soon"`` gives None, so the caller falls back to
    backoff.
    """
    text = (value or "").strip()
    if not text:
        return None
    if _SIGNED_INT.fullmatch(text):
        digits = text.lstrip("+-")
        if len(digits) > _MAX_RETRY_AFTER_DIGITS:
            return 0.0 if text.startswith("-") else math.inf
        return max(0.0, float(int(text)))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.utcoffset() is None:
        # RFC 9110 HTTP-dates are GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff after ``attempt`` (1-based) failed attempts.

    Uniform in ``[0, min(cap, base * 2**(attempt-1))]``, the "full jitter" of the AWS
    architecture blog that tenacity's ``wait_random_exponential`` also implements.
    """
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0.0, ceiling)  # jitter, not a secret


def never_sent(exc: BaseException) -> bool:
    """True when a requests failure happened before any byte of the request left this machine.

    That is a connect timeout, a refused/unreachable connection or DNS failure (urllib3's
    ``NewConnectionError``), or a TLS handshake failure.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the cause
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def retryable_connect_failure(exc: BaseException) -> bool:
    """True for a connect-phase failure worth another try (TLS verification failures are not)."""
    return never_sent(exc) and not isinstance(exc, requests.exceptions.SSLError)


def is_transient_read_failure(exc: BaseException) -> bool:
    """True for a transport failure a GET may retry: timeouts, refused/reset connections,
    a body cut off mid-stream. Certificate failures are permanent and are not retried."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | requests.exceptions.ChunkedEncodingError,
    )


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Wait ``Retry-After`` when the last answer named one, else full-jitter backoff.

    Backoff is clipped to what is left of the total-wait budget; a ``Retry-After`` is never
    shortened (sleeping less than upstream asked only earns another 429), so an over-long one
    makes ``_StopRetrying`` end the retries instead.
    """

    def __init__(
        self, policy: RetryPolicy, clock: Callable[[], datetime], rng: random.Random | None
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            reply: StatusReply = outcome.result()
            asked = retry_after_seconds(reply.headers.get("Retry-After"), self.clock())
            if asked is not None:
                return asked
        backoff = backoff_seconds(retry_state.attempt_number, self.policy, self.rng)
        remaining = max(0.0, self.policy.max_total_wait_s - retry_state.idle_for)
        return min(backoff, remaining)


class _StopRetrying(tenacity.stop.stop_base):
    """Stop after ``max_attempts``, or when the next sleep is longer than the bounds allow."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep  # tenacity computes the wait before asking stop
        return (
            retry_state.attempt_number >= self.policy.max_attempts
            or upcoming > self.policy.max_retry_after_s
            or retry_state.idle_for + upcoming > self.policy.max_total_wait_s
        )


def _last_outcome(retry_state: tenacity.RetryCallState) -> Any:
    # Without this, stopping on a retryable *result* raises tenacity.RetryError even with
    # reraise=True (TOOLCHAIN.md §8); the caller wants the last answer (or exception) itself.
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


def read_retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], datetime],
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    rng: random.Random | None = None,
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` for one read, per ``policy``.

    The wrapped function returns a ``StatusReply``; a reply with a status in
    ``RETRYABLE_STATUSES`` or a transient transport exception is retried. When the retries end,
    the last reply is returned (check its status) or the last exception re-raised: never
    ``tenacity.RetryError``.
    """
    return tenacity.Retrying(
        retry=(
            tenacity.retry_if_result(lambda reply: reply.status in RETRYABLE_STATUSES)
            | tenacity.retry_if_exception(is_transient_read_failure)
        ),
        wait=_WaitRetryAfter(policy, clock, rng),
        stop=_StopRetrying(policy),
        sleep=sleep,
        before_sleep=before_sleep,
        retry_error_callback=_last_outcome,
        reraise=True,
    )
