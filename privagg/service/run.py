"""Turn a client's request into a call of privagg's release function, charged to the service's budgets.

The request names the library function (``footfall``, ``visits``,
``dwell_times``, ``dwell_mean``, ``od_flows``, ``segment_stats``) and its
parameters, with the library's names and defaults; the library validates
them, so errors read as they do in Python. Keys are public by default
(every area x time bin (x segment value) of the dataset's cells and window,
as ``privagg release`` does); ``keys="private"`` selects them privately
(needs ``delta``).

The release function charges the budget itself, after validating everything
and before drawing any noise; :class:`ServiceBudget` is the budget it is
given, whose charge is :meth:`privagg.service.store.Store.charge` (client
window budget and global cap, one transaction).
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
import json
import math
import os
import time
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

import privagg as pa
from privagg.dp.budget import Budget, Loss
from privagg.dp.ledger import cost_of
from privagg.errors import PrivaggInputError
from privagg.queries import Query, public_keys
from privagg.release import PrivacyRecord, Release
from privagg.service.store import Client, Store, canonical, digest, iso, new_release_id, now_utc

FUNCTIONS: dict[str, Callable[..., Release]] = {
    "footfall": pa.footfall, "visits": pa.visits, "dwell_times": pa.dwell_times, "dwell_mean": pa.dwell_mean,
    "od_flows": pa.od_flows, "segment_stats": pa.segment_stats,
}
COMMON = ("epsilon", "rho", "delta", "bounds", "ci_level", "start", "end", "level", "time_bin")
#: Parameters each function takes beyond COMMON (and ``dataset``, ``keys``).
SPECIFIC = {"footfall": ("source",), "visits": (), "dwell_times": ("edges",), "dwell_mean": (), "od_flows": (),
            "segment_stats": ("by", "measure", "column", "source")}
BOUND_FIELDS = ("max_partitions", "max_per_partition", "lower", "upper")
#: Environment variable: seconds to wait after a charge, before the noise (fault injection for crash tests).
PAUSE_ENV = "PRIVAGG_SERVICE_PAUSE_AFTER_CHARGE"
#: Bytes a released key takes in an answer, roughly (JSON row of keys, value and interval).
BYTES_PER_KEY = 120


def parameters_for(function: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The function's keyword arguments from a request body (unknown or inapplicable names refused)."""
    if function not in FUNCTIONS:
        raise PrivaggInputError(
            f"there is no release function {function!r}. Fix: use one of {', '.join(FUNCTIONS)}."
        )
    allowed = set(COMMON) | set(SPECIFIC[function])
    wrong = sorted(set(body) - allowed - {"dataset", "keys"})
    if wrong:
        raise PrivaggInputError(
            f"{function}() has no parameter {wrong[0]!r}. Fix: drop it; {function} takes "
            f"{', '.join(sorted(allowed | {'dataset', 'keys'}))}."
        )
    kwargs = {k: v for k, v in body.items() if k in allowed}
    if "bounds" in kwargs and kwargs["bounds"] is not None:
        b = kwargs["bounds"]
        if not isinstance(b, dict) or set(b) - set(BOUND_FIELDS):
            raise PrivaggInputError(
                f"bounds={b!r} must be an object with some of {', '.join(BOUND_FIELDS)}. "
                "Fix: e.g. \"bounds\": {\"max_partitions\": 24}."
            )
        kwargs["bounds"] = pa.Bounds(**{**_default_bounds(function, kwargs).to_dict(), **b})
    if "edges" in kwargs and isinstance(kwargs["edges"], list):
        kwargs["edges"] = tuple(kwargs["edges"])
    if "by" in kwargs and not isinstance(kwargs["by"], list):
        raise PrivaggInputError(f"by={kwargs['by']!r} must be a list of user columns. Fix: e.g. \"by\": [\"age_band\"].")
    return kwargs


def _default(function: str, name: str) -> Any:
    return inspect.signature(FUNCTIONS[function]).parameters[name].default


def query_for(function: str, world: pa.World, kwargs: Mapping[str, Any]) -> Query:
    """The Query ``function`` would build from ``kwargs`` (for its public key domain)."""
    from privagg.releases.dwell import check_edges
    from privagg.releases.footfall import infer_source

    def get(name: str) -> Any:
        return kwargs[name] if name in kwargs else _default(function, name)

    common = {"level": get("level"), "time_bin": get("time_bin"), "start": get("start"), "end": get("end")}
    if function == "footfall":
        return Query("footfall", source=infer_source(world, get("source")), **common)
    if function == "dwell_times":
        return Query("dwell_times", dwell_edges=check_edges(get("edges")), **common)
    if function in ("visits", "dwell_mean", "od_flows"):
        return Query(function, **common)
    measure = get("measure")
    if measure not in ("count", "mean", "micro"):
        raise PrivaggInputError(f"measure={measure!r} is unknown. Fix: use one of 'count', 'mean', 'micro'.")
    statistic = {"count": "segment_counts", "mean": "segment_mean", "micro": "micro_segments"}[measure]
    if measure == "count" and not get("by"):
        raise PrivaggInputError("segment_stats(measure='count') needs by=[...]. Fix: e.g. by=['age_band', 'gender'].")
    if measure != "count":
        if common["time_bin"] not in ("auto", None):
            raise PrivaggInputError(
                f"time_bin={common['time_bin']!r}: measure={measure!r} describes subscribers, not times. "
                "Fix: pass time_bin=None."
            )
        common["time_bin"] = None
        if common["level"] == "auto":
            common["level"] = None
    source = infer_source(world, get("source")) if measure == "count" else "stays"
    return Query(statistic, by=tuple(get("by") or ()), source=source, column=get("column"), **common)


def _default_bounds(function: str, kwargs: Mapping[str, Any]) -> pa.Bounds:
    from privagg.releases.core import default_bounds

    statistic = {"footfall": "footfall", "visits": "visits", "dwell_times": "dwell_times", "dwell_mean": "dwell_mean",
                 "od_flows": "od_flows"}.get(function)
    if statistic is None:
        statistic = {"count": "segment_counts", "mean": "segment_mean", "micro": "micro_segments"}.get(
            kwargs.get("measure", "count"), "segment_counts")
    return default_bounds(SimpleNamespace(statistic=statistic))  # it reads only the statistic


def keys_for(function: str, world: pa.World, kwargs: Mapping[str, Any], choice: Any) -> pa.KeySet | None:
    """The public key domain (``keys="public"``, the default) or ``None`` (``keys="private"``)."""
    if choice in (None, "public"):
        query = query_for(function, world, kwargs)
        start = kwargs.get("start") if kwargs.get("start") is not None else world.start
        end = kwargs.get("end") if kwargs.get("end") is not None else world.end
        try:
            return public_keys(query, world.cells, start=start, end=end, users_columns=list(world.users.columns))
        except PrivaggInputError as exc:
            if "no public list of values" not in str(exc):
                raise
            raise PrivaggInputError(
                f"{str(exc).split('. Fix:')[0]}. Fix: send \"keys\": \"private\" with delta > 0, or crossbreak by "
                "columns with public values (age_band, gender, contract, device_tier, tag_* columns)."
            ) from None
    if choice == "private":
        return None
    raise PrivaggInputError(f"keys={choice!r} is unknown. Fix: send \"keys\": \"public\" (default) or \"private\".")


class ServiceBudget(Budget):
    """The budget a release function charges: the client's window budget and the dataset's global cap.

    :meth:`check` reads the budgets without a lock (a refusal before any work);
    :meth:`charge` checks again and charges in one transaction
    (:meth:`Store.charge`). A request charged before whose answer was never
    stored (the server stopped in between) is not charged again: its charge
    pays for this computation, whose answer is the first one ever returned.
    """

    def __init__(self, store: Store, client: Client, dataset: str, request_hash: str,
                 request: Mapping[str, Any]) -> None:
        super().__init__(epsilon=1.0)  # totals are the store's; this in-memory one is never used
        self._service = (store, client, dataset, request_hash, dict(request))
        self.charge_seq: int | None = None
        self.cost: dict[str, float] | None = None
        self.reused = False

    def check(self, loss: Loss, statistic: str = "release") -> None:
        store, client, dataset, _, _ = self._service
        store.precheck(client, dataset, statistic, cost_of(loss, "approx", statistic))

    def can_afford(self, loss: Loss) -> bool:  # pragma: no cover - not used by release functions
        try:
            self.check(loss)
        except Exception:
            return False
        return True

    def charge(self, loss: Loss, *, statistic: str = "release", **_: Any) -> dict[str, Any]:  # type: ignore[override]
        from privagg.service.store import ChargeExists

        store, client, dataset, request_hash, request = self._service
        cost = cost_of(loss, "approx", statistic)
        try:
            self.charge_seq = store.charge(client, dataset, request_hash, statistic, cost, request)
        except ChargeExists as exc:
            self.charge_seq, self.reused = exc.seq, True
        self.cost = cost
        pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
        if pause > 0:  # fault injection for the crash tests: a window between the charge and the noise
            time.sleep(pause)
        return {"seq": self.charge_seq, "cost": cost}


def request_hash(dataset: str, function: str, body: Mapping[str, Any]) -> str:
    """Digest of what was asked: two requests with equal digests have the same answer."""
    return digest({"dataset": dataset, "function": function,
                   "body": {k: v for k, v in body.items() if k != "dataset"}})


def release_to_json(rel: Release) -> dict[str, Any]:
    """The released table as ``{"columns", "key_columns", "data"}`` (times ISO, NaN as null)."""
    table = rel.to_pandas()
    split = json.loads(table.to_json(orient="split", date_format="iso", date_unit="s", index=False))
    return {"columns": split["columns"], "key_columns": list(rel.key_columns), "data": split["data"]}


def release_from_json(answer: Mapping[str, Any]) -> Release:
    """The :class:`~privagg.release.Release` an answer holds (``release_id`` set as an attribute)."""
    t = answer["table"]
    table = pd.DataFrame(t["data"], columns=t["columns"])
    for column in ("value", "ci_low", "ci_high"):
        if column in table.columns:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    if "time" in table.columns:
        table["time"] = pd.to_datetime(table["time"]).dt.tz_localize(None) if len(table) else pd.to_datetime(table["time"])
    p = dict(answer["privacy"])
    rel = Release(table, t["key_columns"], PrivacyRecord(**{**p, "notes": tuple(p.get("notes", ()))}))
    rel.release_id = answer["release_id"]  # type: ignore[attr-defined]
    return rel


def run_release(store: Store, client: Client, dataset: Any, function: str, body: Mapping[str, Any],
                max_keys: int) -> dict[str, Any]:
    """Release ``function`` on ``dataset`` for ``client``; return the stored answer (charged once)."""
    world = dataset.current(store)  # consent as of now
    kwargs = parameters_for(function, body)
    keys = keys_for(function, world, kwargs, body.get("keys"))
    if keys is not None and len(keys) > max_keys:
        raise ResponseTooLarge(
            f"{function}: the answer would have {len(keys):,} keys (about {len(keys) * BYTES_PER_KEY / 1e6:,.0f} MB), "
            f"more than this service returns ({max_keys:,} keys). Nothing was charged. Fix: a coarser level or "
            "time_bin, a shorter start..end window, or fewer by columns."
        )
    h = request_hash(dataset.name, function, body)
    request = {"function": function, **body}
    budget = ServiceBudget(store, client, dataset.name, h, request)
    rel = FUNCTIONS[function](world, keys=keys, budget=budget, **kwargs)
    if budget.charge_seq is None or budget.cost is None:  # every release function charges; never answer unpaid
        raise RuntimeError("the release was not charged")
    answer = {
        "release_id": new_release_id(), "created": iso(now_utc()), "dataset": dataset.name, "function": function,
        "statistic": rel.privacy.statistic, "request": request, "cost": budget.cost, "n_keys": len(rel),
        "describe": rel.privacy.describe(), "privacy": json.loads(canonical(_finite(rel.privacy.to_dict()))),
        "table": release_to_json(rel),
    }
    import sqlalchemy as sa

    try:
        store.store_answer(client, budget.charge_seq, h, answer,
                           {"outcome": f"{len(rel):,} keys; {rel.privacy.describe()}"
                                       + ("; charge of an interrupted attempt reused" if budget.reused else "")})
    except sa.exc.IntegrityError:
        # Another server process answered the same charged request first: its answer is the one that exists;
        # this one, never stored, is never sent.
        stored = store.answer_for(client, h)
        if stored is None:
            raise
        return stored
    return answer


def _finite(value: Any) -> Any:
    """The record with non-finite floats as strings (JSON has no inf)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return str(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


class ResponseTooLarge(PrivaggInputError):
    """The answer would not fit the service's limits; refused before anything was computed or charged."""
