"""What an audit runs a mechanism on, and what it keeps of the releases.

:func:`remove_most_active` makes the neighbouring dataset D' (D without its
most active subscriber); :class:`ReleaseMechanism` turns an anonymiser and a
query into a mechanism to audit. ``_Draws`` holds the releases drawn from one
dataset: their values as vectors, and a fingerprint of each release's key set
with one key table per fingerprint, the evidence when the key sets of D and
D' differ (``_key_difference`` and ``_describe_keys`` say how).
:func:`~privagg.audit.lower_bound.epsilon_lower_bound` uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError

__all__ = ["ReleaseMechanism", "remove_most_active"]


def remove_most_active(dataset: Any) -> tuple[Any, str]:
    """D' = D without its most active subscriber (most rows, ties by smallest id).

    ``dataset`` is a DataFrame with a ``user_id`` column, or a
    :class:`~privagg.world.World` (activity = rows in events, stays and trips;
    only subscribers who opted in, since releases exclude the others).
    """
    from privagg.world import World

    if isinstance(dataset, World):
        # Subscribers who opted out never reach a release: removing one would change nothing.
        consenting = dataset.users.loc[dataset.users["opt_in"].to_numpy(dtype=bool), "user_id"]
        activity = pd.concat(
            [dataset.events["user_id"], dataset.stays["user_id"], dataset.trips["user_id"]], ignore_index=True
        ).value_counts()
        activity = activity.loc[activity.index.isin(consenting)]
        if activity.empty:
            raise PrivaggInputError("the World has no events, stays or trips; no subscriber to remove.")
        user = _top(activity)
        keep = lambda df: df.loc[df["user_id"] != user].reset_index(drop=True)  # noqa: E731
        from dataclasses import replace

        neighbour = replace(
            dataset, users=keep(dataset.users), events=keep(dataset.events), stays=keep(dataset.stays),
            trips=keep(dataset.trips),
        )
        return neighbour, f"removed the most active subscriber (user_id={user}, {int(activity[user])} rows)"
    if isinstance(dataset, pd.DataFrame) and "user_id" in dataset.columns:
        activity = dataset["user_id"].value_counts()
        if activity.empty:
            raise PrivaggInputError("the dataset is empty; no subscriber to remove.")
        user = _top(activity)
        neighbour = dataset.loc[dataset["user_id"] != user].reset_index(drop=True)
        return neighbour, f"removed the most active subscriber (user_id={user}, {int(activity[user])} rows)"
    raise PrivaggInputError(
        "neighbour=None needs a dataset with subscribers: a DataFrame with a 'user_id' column or a World. "
        "Fix: pass neighbour= as the neighbouring dataset or a function making it."
    )


def _top(activity: pd.Series) -> Any:
    top = activity.max()
    return sorted(activity.index[activity.to_numpy() == top])[0]


def _as_vector(output: Any) -> np.ndarray:
    if hasattr(output, "values") and hasattr(output, "privacy"):  # a privagg Release
        return np.asarray(output.values, dtype=float)
    if isinstance(output, pd.DataFrame):
        return output["value"].to_numpy(dtype=float)
    return np.asarray(output, dtype=float).ravel()


def _keys_of(output: Any) -> pd.DataFrame | None:
    """The released keys of one output (a Release or a DataFrame), or None for a bare vector."""
    if hasattr(output, "to_pandas") and hasattr(output, "key_columns"):
        return output.to_pandas().loc[:, list(output.key_columns)]
    if isinstance(output, pd.DataFrame):
        return output.loc[:, [c for c in output.columns if c not in ("value", "ci_low", "ci_high")]]
    return None


def _signature(keys: pd.DataFrame | None, n_values: int) -> tuple:
    """A hashable fingerprint of a release's key set: its size and a hash of the key rows."""
    if keys is None or keys.shape[1] == 0:
        return (n_values,)
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    return (n_values, hash(np.sort(hashed).tobytes()))


@dataclass
class _Draws:
    """Releases drawn so far from one dataset: values (when every key set is the same), key fingerprints,
    and one key table per fingerprint (the evidence when key sets differ)."""

    values: list[np.ndarray] = field(default_factory=list)
    signatures: list[tuple] = field(default_factory=list)
    keys: dict[tuple, Any] = field(default_factory=dict)
    record: Any = None

    @property
    def n(self) -> int:
        return len(self.signatures)

    def add(self, mechanism: Callable, dataset: Any, n: int, rng: np.random.Generator) -> None:
        if hasattr(mechanism, "sample"):
            out = mechanism.sample(dataset, n, rng=rng)
            rows = list(out) if isinstance(out, list) else list(np.asarray(out, dtype=float).reshape(n, -1))
            # a mechanism may say which keys its releases carry (the evidence when they depend on the data)
            keys = mechanism.released_keys(dataset) if hasattr(mechanism, "released_keys") else None
            outputs = [(np.asarray(r, dtype=float).ravel(), keys) for r in rows]
        else:
            outputs = []
            for _ in range(n):
                o = mechanism(dataset)
                if self.record is None:
                    self.record = getattr(o, "privacy", None)
                outputs.append((_as_vector(o), _keys_of(o)))
        for vector, keys in outputs:
            sig = _signature(keys, len(vector))
            if sig not in self.keys:
                self.keys[sig] = keys if keys is not None else np.arange(len(vector))
            self.signatures.append(sig)
            self.values.append(vector)


class ReleaseMechanism:
    """An :class:`~privagg.anonymisers.base.Anonymiser` answering one query, as a mechanism to audit.

    ``ReleaseMechanism(anonymiser, query)(world)`` is ``anonymiser.release(world, query)``.
    The claimed epsilon is the anonymiser's ``epsilon`` (nominal for
    baselines such as the naive Laplace); the noise scale is read from the
    releases' privacy records. Each release runs the whole pipeline, so
    audits of World-level releases need small worlds or patience.
    """

    def __init__(self, anonymiser: Any, query: Any) -> None:
        self.anonymiser = anonymiser
        self.query = query
        self.claimed_epsilon = getattr(anonymiser, "epsilon", None)
        self.name = getattr(anonymiser, "name", type(anonymiser).__name__)

    def __call__(self, world: Any) -> Any:
        return self.anonymiser.release(world, self.query)


def _describe_keys(keys: Any, limit: int = 10) -> str:
    if isinstance(keys, pd.DataFrame) and keys.empty:
        return "none"
    if isinstance(keys, pd.DataFrame):
        rows = [", ".join(f"{c}={v}" for c, v in zip(keys.columns, row)) for row in keys.head(limit).itertuples(index=False)]
        more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
        return "; ".join(f"({r})" for r in rows) + more
    return f"{len(keys)} values"


def _key_difference(a: Any, b: Any) -> tuple[Any, Any]:
    """Keys in ``a`` but not ``b`` and the reverse (DataFrames), or the two lengths for bare vectors."""
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame) and list(a.columns) == list(b.columns):
        both = a.merge(b.drop_duplicates(), how="outer", indicator=True)
        return (both.loc[both["_merge"] == "left_only", list(a.columns)],
                both.loc[both["_merge"] == "right_only", list(a.columns)])
    return a, b
