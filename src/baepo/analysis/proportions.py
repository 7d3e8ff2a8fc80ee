"""Confidence bounds for error rates: one proportion, and the difference of two.

- :func:`rate_lower_bound` and :func:`rate_upper_bound`: the exact (Clopper-Pearson)
  one-sided bounds of ``k`` in ``n``, from scipy's beta distribution. 5 errors in 20 requests
  are above 5 % at 99.5 %; 4 in 20 are not.
- :func:`exceeds_by`: whether one rate is certainly above another by more than a margin: the
  first one's lower bound minus the second one's upper bound. Each bound holds at
  ``confidence`` whatever the sample size (the exact bounds never claim more than they
  know), so the answer is wrong with a probability of at most twice ``1 - confidence``, and
  far less in practice, since both bounds have to miss at once.

Why not a tighter interval of the difference (Newcombe's hybrid score, a pooled z-test)? The
guards ask their question on every controller pass, four times a second, over windows as
short as a second where the new revision has served ten requests: with 10 % of errors on
both revisions, those approximate intervals tripped in 5 % to 30 % of simulated two-minute
canaries at 99.5 % (they are anti-conservative at small counts), the exact bounds in none of
400 at a 5-point margin, while a 30 % error canary was still caught in 1-2 s at 10 req/s.
All functions are cached, since the same counts come back pass after pass.

scipy is imported by the bounds on first use, which takes from half a second to several on a
busy machine. The server's controller calls :func:`load` in a thread at start
(``controller.loop``) and its guards judge only once :func:`loaded` says so, so no pass waits
on that import holding the event loop; the CLI never loads scipy. Pure but for that import.
Callers: ``analysis.guards`` (errors, and requests slower than a bound), the controller.
"""

from __future__ import annotations

import importlib
import threading
from functools import lru_cache

CONFIDENCE = 0.995
"""One-sided confidence of the bounds unless a caller says otherwise."""
SCIPY_MODULE = "scipy.stats"
_loaded = threading.Event()


def load() -> None:
    """Import what the bounds need (blocking: call it in a thread); then :func:`loaded`."""
    importlib.import_module(SCIPY_MODULE)
    _loaded.set()


def loaded() -> bool:
    """Whether :func:`load` finished, so the bounds answer without importing anything."""
    return _loaded.is_set()


@lru_cache(maxsize=4096)
def rate_lower_bound(errors: int, requests: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided lower ``confidence`` bound of the rate ``errors / requests``
    (Clopper-Pearson, exact); 0 without errors or requests."""
    if errors <= 0 or requests <= 0:
        return 0.0
    from scipy.stats import beta  # type: ignore[import-untyped]

    return float(beta.ppf(1 - confidence, errors, requests - errors + 1))


@lru_cache(maxsize=4096)
def rate_upper_bound(errors: int, requests: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided upper ``confidence`` bound of the rate ``errors / requests``
    (Clopper-Pearson, exact); 1 without requests or when every request failed."""
    if requests <= 0 or errors >= requests:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, errors + 1, requests - errors))


def exceeds_by(
    first: tuple[int, int],
    second: tuple[int, int],
    margin: float,
    confidence: float = CONFIDENCE,
) -> bool:
    """Whether the rate ``first = (k, n)`` is certainly above ``second``'s by more than
    ``margin``: its lower bound minus the other's upper bound, each at ``confidence``."""
    return rate_lower_bound(*first, confidence) - rate_upper_bound(*second, confidence) > margin
