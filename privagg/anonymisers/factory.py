"""One factory from a family name and parameters to an anonymiser: the vocabulary of claims and specs.

Claim files (``[method]``) and experiment specs (``[[anonymisers]]``) name
an anonymiser by ``family`` and give its parameters by the names below;
:func:`make_anonymiser` turns them into the object. Contribution bounds are
flat parameters here (``max_partitions``, ``max_per_partition``, ``lower``,
``upper``) and become a :class:`~privagg.dp.bounds.Bounds`.

Examples
--------
>>> make_anonymiser("suppression", {"k": 10}).name
'suppression(k=10)'
>>> make_anonymiser("dp", {"epsilon": 0.5, "unit": "subscriber-day"}).name
'dp(epsilon=0.5 per subscriber-day)'
"""

from __future__ import annotations

from typing import Any, Mapping

from privagg.anonymisers.base import Anonymiser
from privagg.errors import PrivaggInputError

#: Parameters each family accepts (besides ``family``), by family.
FAMILY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "raw": ("include_empty",),
    "suppression": ("k", "rounding", "include_empty"),
    "coarsening": ("level", "time_bin", "k"),
    "pseudonymised": ("source", "level", "time_bin", "attributes"),
    "dp": ("epsilon", "rho", "delta", "unit", "max_partitions", "max_per_partition", "lower", "upper",
           "public_keys", "ci_level"),
    "naive_laplace": ("epsilon", "max_partitions", "max_per_partition"),
}
BOUND_PARAMETERS = ("max_partitions", "max_per_partition", "lower", "upper")
#: Old spellings still read in claim files and specs.
PARAMETER_ALIASES = {"privacy_unit": "unit"}


def _none(value: Any) -> Any:
    """TOML has no null: the string "none" stands for None."""
    return None if isinstance(value, str) and value.lower() == "none" else value


def make_anonymiser(family: str, params: Mapping[str, Any] | None = None, *, seed: int | None = None,
                    budget: Any = None) -> Anonymiser:
    """The anonymiser of ``family`` with ``params`` (flat contribution bounds).

    Parameters
    ----------
    family
        One of :data:`FAMILY_PARAMETERS`.
    params
        Its parameters, as in a claim's ``[method]`` or a spec's ``[[anonymisers]]`` table.
    seed
        Seeds the methods that draw pseudonyms or (insecure) numpy noise: ``pseudonymised``, ``naive_laplace``.
    budget
        Charged by every DP release (``dp`` only).
    """
    if family not in FAMILY_PARAMETERS:
        raise PrivaggInputError(
            f"anonymiser family {family!r} is unknown. Fix: use one of {', '.join(FAMILY_PARAMETERS)}."
        )
    kwargs = {PARAMETER_ALIASES.get(k, k): _none(v) for k, v in (params or {}).items()}
    unknown = [k for k in kwargs if k not in FAMILY_PARAMETERS[family]]
    if unknown:
        raise PrivaggInputError(
            f"anonymiser family {family!r} has no parameter {unknown[0]!r}. "
            f"Fix: use {', '.join(FAMILY_PARAMETERS[family]) or 'no parameters'}."
        )
    bounds = {k: kwargs.pop(k) for k in BOUND_PARAMETERS if kwargs.get(k) is not None}
    for k in BOUND_PARAMETERS:
        kwargs.pop(k, None)
    if family == "raw":
        from privagg.anonymisers.raw import Raw

        return Raw(**kwargs)
    if family == "suppression":
        from privagg.anonymisers.suppression import Suppression

        return Suppression(**kwargs)
    if family == "coarsening":
        from privagg.anonymisers.coarsening import Coarsening

        kwargs.setdefault("time_bin", None)
        return Coarsening(**kwargs)
    if family == "pseudonymised":
        from privagg.anonymisers.pseudonymised import Pseudonymised

        if "attributes" in kwargs:
            kwargs["attributes"] = tuple(kwargs["attributes"] or ())
        return Pseudonymised(seed=seed, **kwargs)
    from privagg.dp.bounds import Bounds

    if family == "naive_laplace":
        from privagg.anonymisers.naive_laplace import NaiveLaplace

        return NaiveLaplace(bounds=Bounds(**bounds) if bounds else None, seed=seed, **kwargs)
    from privagg.anonymisers.dp import DPAnonymiser

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return DPAnonymiser(bounds=Bounds(**bounds) if bounds else None, budget=budget, **kwargs)


__all__ = ["FAMILY_PARAMETERS", "make_anonymiser"]
