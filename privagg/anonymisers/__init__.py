"""Anonymisers: the release methods compared by privagg (DP and the field's baselines)."""

from privagg.anonymisers.base import Anonymiser

__all__ = ["Anonymiser"]
