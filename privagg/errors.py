"""Errors privagg raises at its boundary.

Every error a user can trigger names what is wrong (table, column or
parameter), how much of the input is affected, and how to fix it. They are
raised before any work is done and before any privacy budget is spent.
"""

from __future__ import annotations


class PrivaggError(Exception):
    """Base class of all errors raised by privagg."""


class PrivaggInputError(PrivaggError, ValueError):
    """Input data or a parameter is invalid; nothing was computed or spent."""


class BudgetExceededError(PrivaggError):
    """A release would exceed the privacy budget; it was refused and nothing was drawn."""
