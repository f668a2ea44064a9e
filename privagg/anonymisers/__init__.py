"""Anonymisers: the release methods compared by privagg (DP and the field's baselines)."""

from privagg.anonymisers.base import Anonymiser
from privagg.anonymisers.dp import DPAnonymiser

__all__ = ["Anonymiser", "DPAnonymiser"]
