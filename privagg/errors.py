"""Errors privagg raises at its boundary.

Every error a user can trigger names what is wrong (table, column or
parameter), how much of the input is affected, and how to fix it. They are
raised before any work is done and before any privacy budget is spent.
"""

from __future__ import annotations


class PrivaggError(Exception):
    """Base class of all errors raised by privagg.

    Examples
    --------
    >>> import privagg as pa
    >>> issubclass(pa.PrivaggInputError, pa.PrivaggError), issubclass(pa.BudgetExceededError, pa.PrivaggError)
    (True, True)
    """


class PrivaggInputError(PrivaggError, ValueError):
    """Input data or a parameter is invalid; nothing was computed or spent.

    Examples
    --------
    >>> import privagg as pa
    >>> try:
    ...     pa.Bounds(max_partitions=0)
    ... except pa.PrivaggInputError as err:
    ...     print(err)
    bounds.max_partitions=0 is below 1. Fix: pass a whole number >= 1, e.g. Bounds(max_partitions=24).
    """


class BudgetExceededError(PrivaggError):
    """A release would exceed the privacy budget; it was refused and nothing was drawn.

    Examples
    --------
    >>> import privagg as pa
    >>> budget = pa.Budget(epsilon=1.0)
    >>> try:
    ...     budget.charge(pa.Loss(epsilon=2.0))
    ... except pa.BudgetExceededError:
    ...     print("refused; remaining:", budget.remaining["epsilon"])
    refused; remaining: 1.0
    """
