"""Anonymisers: the release methods compared by privagg (DP and the field's baselines).

Each gives attacks its model of itself (:meth:`Anonymiser.publication_model`,
a :class:`~privagg.anonymisers.models.Publication`), or raises
:class:`PublicationModelUnavailable`.
"""

from privagg.anonymisers.base import Anonymiser, PublicationModelUnavailable
from privagg.anonymisers.dp import DPAnonymiser
from privagg.anonymisers.models import Publication

__all__ = ["Anonymiser", "DPAnonymiser", "Publication", "PublicationModelUnavailable"]
