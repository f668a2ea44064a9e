"""A Python client of ``privagg serve``, with the library's function names.

>>> from privagg.client import Client
>>> c = Client("http://127.0.0.1:8000", token)                    # doctest: +SKIP
>>> rel = c.footfall(epsilon=0.5, level="zone", time_bin="1D")    # doctest: +SKIP
>>> rel.to_pandas().head()                                         # doctest: +SKIP
>>> c.budget()                                                     # doctest: +SKIP

Each release method takes the library function's keyword arguments (without
the data, which is the service's dataset: ``dataset=`` picks one) and returns
a :class:`~privagg.release.Release`, with ``release_id`` set. A refused or
invalid request raises :class:`~privagg.errors.BudgetExceededError` or
:class:`~privagg.errors.PrivaggInputError` with the service's one-line message;
:class:`ServiceError` for anything else (authentication, limits).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from privagg.dp.bounds import Bounds
from privagg.errors import BudgetExceededError, PrivaggError, PrivaggInputError
from privagg.release import Release


class ServiceError(PrivaggError):
    """The service refused a request (status and its one-line message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Client:
    """A connection to a privagg service.

    Parameters
    ----------
    url
        The service, e.g. ``"http://127.0.0.1:8000"``.
    token
        The client's token (printed once by ``privagg clients add``).
    timeout
        Seconds to wait for an answer.
    retries
        Times a release is sent again after a broken connection, with the same
        ``Idempotency-Key``: the service never charges it twice.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 120.0, retries: int = 2) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    # -- plumbing ---------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None,
              retries: int = 0) -> Any:
        for attempt in range(retries + 1):
            try:
                r = self._http.request(method, path, json=json, headers=headers)
                break
            except httpx.TransportError:
                if attempt == retries:
                    raise
        try:
            body = r.json()
        except ValueError:
            body = {"error": r.text[:200]}
        if r.status_code == 200:
            return body
        message = body.get("error", str(body)) if isinstance(body, dict) else str(body)
        if r.status_code == 400:
            raise PrivaggInputError(message)
        if r.status_code == 403 and isinstance(body, dict) and body.get("refused") == "budget":
            raise BudgetExceededError(message)
        raise ServiceError(r.status_code, message)

    def _release(self, function: str, params: dict[str, Any], idempotency_key: str | None) -> Release:
        from privagg.service.run import release_from_json

        body = {k: (v.to_dict() if isinstance(v, Bounds) else (list(v) if isinstance(v, tuple) else v))
                for k, v in params.items()}
        key = idempotency_key or uuid.uuid4().hex
        answer = self._call("POST", f"/v1/releases/{function}", json=body, headers={"Idempotency-Key": key},
                            retries=self.retries)
        rel = release_from_json(answer)
        rel.cached = answer.get("cached", False)  # type: ignore[attr-defined]
        rel.charged = answer.get("charged")  # type: ignore[attr-defined]
        return rel

    # -- the library's release functions ------------------------------------------------------------
    def footfall(self, *, idempotency_key: str | None = None, **params: Any) -> Release:
        """:func:`privagg.footfall` on the service's dataset (``dataset=`` to choose one)."""
        return self._release("footfall", params, idempotency_key)

    def visits(self, *, idempotency_key: str | None = None, **params: Any) -> Release:
        """:func:`privagg.visits` on the service's dataset."""
        return self._release("visits", params, idempotency_key)

    def dwell_times(self, *, idempotency_key: str | None = None, **params: Any) -> Release:
        """:func:`privagg.dwell_times` on the service's dataset."""
        return self._release("dwell_times", params, idempotency_key)

    def dwell_mean(self, *, idempotency_key: str | None = None, **params: Any) -> Release:
        """:func:`privagg.dwell_mean` on the service's dataset."""
        return self._release("dwell_mean", params, idempotency_key)

    def od_flows(self, *, idempotency_key: str | None = None, **params: Any) -> Release:
        """:func:`privagg.od_flows` on the service's dataset."""
        return self._release("od_flows", params, idempotency_key)

    def segment_stats(self, *, idempotency_key: str | None = None, **params: Any) -> Release:
        """:func:`privagg.segment_stats` on the service's dataset."""
        return self._release("segment_stats", params, idempotency_key)

    def compare(self, a: Release | str, b: Release | str, **params: Any) -> Any:
        """:func:`privagg.compare` of two of this client's releases (objects or ids): a
        :class:`~privagg.compare.Comparison`, computed here from the releases (post-processing, no cost).
        ``POST /v1/compare`` gives the same table over HTTP."""
        from privagg.compare import compare

        sides = [self.release(x) if isinstance(x, str) else x for x in (a, b)]
        return compare(sides[0], sides[1], **params)

    # -- the client's own records ----------------------------------------------------------------------
    def release(self, release_id: str) -> Release:
        """One of this client's releases, by id."""
        from privagg.service.run import release_from_json

        return release_from_json(self._call("GET", f"/v1/releases/{release_id}"))

    def releases(self) -> list[dict[str, Any]]:
        """This client's releases (id, time, dataset, statistic, cost, request)."""
        return self._call("GET", "/v1/releases")["releases"]

    def budget(self) -> list[dict[str, Any]]:
        """This client's budget per dataset in the current window (total, spent, remaining)."""
        return self._call("GET", "/v1/budget")["budgets"]

    def datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/datasets")["datasets"]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
