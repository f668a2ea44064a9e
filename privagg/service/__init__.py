"""privagg.service: differentially private aggregates over HTTP for accredited third parties.

``privagg serve`` runs :func:`~privagg.service.app.create_app` on uvicorn.
Clients (``privagg clients add``) each hold a token and a budget per dataset
and window; every dataset has a global cap across all clients; every charge
is made in one transaction before any noise is drawn
(:class:`~privagg.service.store.Store`); an append-only log records who asked
what, when, at what cost and what was returned, and ``privagg service report``
renders it. :class:`privagg.client.Client` is the Python client.
"""

from privagg.service.app import Settings, create_app
from privagg.service.store import Store

__all__ = ["Settings", "Store", "create_app"]
