"""Verdicts: how a report judges one attack's result, in numbers and in words.

One place for what every report (the claim audit, the demo, the experiment
harness) says about a result: its severity against the stronger of random
guessing and the simplest attack (:func:`reference_level`), its sentence
for a non-specialist, the DP cap where one is known, and how further
figures are named. :func:`finding` turns an
:class:`~privagg.attacks.result.AttackResult` into a report row.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence

#: How far above the reference the interval's lower end must be for each severity.
SEVERITY_MARGINS = (("high", 0.20), ("moderate", 0.05), ("low", 0.0))

def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pct(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if abs(v) <= 1.0 else f"{v:.3g}"


def _fmt(value: Any) -> str:
    v = _num(value)
    if v is None:
        return html.escape(str(value)) if value is not None else "n/a"
    if float(v).is_integer() and abs(v) < 1e12:
        return f"{int(v):,}"
    return f"{v:.3g}"


#: Metric keys that hold the simplest attack's figure (a yardstick stronger than random guessing).
#: ``release_free_accuracy`` is what trajectory recovery scores without seeing the release at all (its
#: scoring pairs recovered and true trajectories), so an attack must beat it to have learnt anything.
YARDSTICK_METRICS = ("stay_put_accuracy", "release_free_accuracy")
#: How further figures are named for a reader (keys not listed are shown with underscores as spaces).
METRIC_LABELS = {
    "auc": "area under the ROC curve (AUC)",
    "tpr_at_0.01_fpr": "members caught at 1% false positives",
    "tpr_at_0.001_fpr": "members caught at 0.1% false positives",
    "dp_auc_bound": "highest AUC the DP guarantee allows",
    "dp_bound": "highest success the DP guarantee allows",
    "stay_put_accuracy": "share right when everyone stays where they slept",
    "release_free_accuracy": "share right without seeing the release at all",
    "mae": "mean absolute error",
    "share_within_10pct": "share of counts within 10% of the truth",
    "mean_relative_error": "mean relative error",
    "share_reconstructed": "share of records rebuilt exactly",
    "baseline_product_of_marginals": "share rebuilt from the one-way tables alone",
    "group_size": "subscribers per group",
    "n_targets": "targets",
}
#: Further figures that are internal detail, not for the report's reader.
HIDDEN_METRICS = ("auc_per_target", "roc_max_excess_over_bound", "seconds", "game")


def yardstick(result: Mapping[str, Any]) -> float | None:
    """The strongest simple attack's figure recorded with ``result`` (e.g. staying put), if any."""
    metrics = result.get("metrics")
    if not isinstance(metrics, Mapping):
        return None
    values = [_num(metrics.get(k)) for k in YARDSTICK_METRICS]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def reference_level(result: Mapping[str, Any]) -> float | None:
    """What an attack must beat to count: the stronger of guessing and the simplest attack."""
    base, stay = _num(result.get("baseline")), yardstick(result)
    if base is None:
        return stay
    return base if stay is None else max(base, stay)


def _dp_bound(result: Any) -> float | None:
    metrics = getattr(result, "metrics", None) or {}
    for key in ("dp_auc_bound", "dp_bound"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return None


def finding(result: Any, comparison: Any = None, *, epsilon: float | None = None, utility: str | None = None,
            similar: bool = True) -> dict[str, Any]:
    """One report row from an :class:`~privagg.attacks.result.AttackResult`.

    Parameters
    ----------
    result
        The attack against the release under review.
    comparison
        The same attack against a DP release of similar accuracy (an AttackResult), if one was run.
    epsilon, utility, similar
        That DP release's epsilon (per its unit), its accuracy in words, and
        whether it reached the reviewed release's accuracy.
    """
    row = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    bound = _dp_bound(result)
    if bound is not None:
        row["dp_bound"] = bound
    stay = yardstick(row)
    if stay is not None:
        row["yardstick"] = stay
    if comparison is not None:
        comp = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
        row["dp_comparison"] = {"target": comp.get("target"), "risk": comp.get("risk"), "ci_low": comp.get("ci_low"),
                                "ci_high": comp.get("ci_high"), "baseline": comp.get("baseline"),
                                "epsilon": epsilon, "utility": utility, "similar": similar}
        comp_bound = _dp_bound(comparison)
        if comp_bound is not None:
            row["dp_comparison"]["dp_bound"] = comp_bound
    return row


def severity(result: Mapping[str, Any]) -> str:
    """``high``, ``moderate``, ``low``, ``none`` or ``unknown``: how far the interval lies above the reference.

    The reference is the stronger of random guessing and the simplest attack
    recorded with the result (:func:`reference_level`), so an attack that only
    matches staying put is not said to succeed.
    """
    low, base, risk = _num(result.get("ci_low")), reference_level(result), _num(result.get("risk"))
    if risk is None or base is None:
        return "unknown"
    if low is None:
        low = risk
    margin = low - base
    for name, threshold in SEVERITY_MARGINS:
        if margin > threshold:
            return name
    return "none"


SEVERITY_WORDS = {
    "high": "succeeds often",
    "moderate": "succeeds",
    "low": "does slightly better than guessing",
    "none": "is not shown to do better than guessing",
    "unknown": "could not be scored",
}


def severity_words(result: Mapping[str, Any]) -> str:
    """The severity in words, naming what the attack was judged against (guessing or the simplest attack)."""
    words = SEVERITY_WORDS[severity(result)]
    stay, base = yardstick(result), _num(result.get("baseline"))
    if stay is not None and stay > (base or 0):
        words = words.replace("guessing", "the simplest attack")
    return words


def verdict_sentence(result: Mapping[str, Any]) -> str:
    """One plain-language sentence for a non-specialist."""
    name = _attack_name(result)
    sev = severity(result)
    level = _num(result.get("confidence_level")) or 0.95
    risk, lo, hi, base = (result.get(k) for k in ("risk", "ci_low", "ci_high", "baseline"))
    if sev == "unknown":
        return f"The {name} could not be scored against {result.get('target', 'this release')}."
    stay = yardstick(result)
    words = severity_words(result)
    core = (f"The {name} {words} against {result.get('target', 'this release')}: "
            f"risk {_pct(risk)} ({round(100 * level)}% interval {_pct(lo)} to {_pct(hi)}), "
            f"against {_pct(base)} for an attacker who only guesses.")
    bound = _num(result.get("dp_bound"))
    if bound is not None:
        core += f" The differential-privacy guarantee caps this risk at {_pct(bound)}."
    if stay is not None:
        core += (f" An attacker who only keeps everyone all day where the night counts put them is right "
                 f"{_pct(stay)} of the time; the verdict is judged against the stronger of the two.")
    if result.get("variant"):
        core += f" Strongest variant: {result['variant']}."
    return core


def metric_label(key: str) -> str:
    """How a further figure is named for a reader."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    return key.replace("_", " ").replace(" pct", "%")


def further_figures(metrics: Mapping[str, Any]) -> str:
    """The further figures of a result, named for a reader and rounded to 3 significant digits."""
    parts = []
    for key, value in metrics.items():
        if (key in HIDDEN_METRICS or key.endswith(("_ci_low", "_ci_high")) or value is None
                or isinstance(value, (list, dict, tuple))):
            continue
        parts.append(f"{metric_label(key)} {_fmt(value)}")
    return "; ".join(parts)


def _comparison_sentence(result: Mapping[str, Any]) -> str | None:
    comp = result.get("dp_comparison")
    if not isinstance(comp, Mapping) or _num(comp.get("risk")) is None:
        return None
    eps = _num(comp.get("epsilon"))
    target = comp.get("target") or (f"DP at ε = {eps:g}" if eps is not None else "a DP release")
    lead = (f"A differentially private release of similar accuracy ({target})" if comp.get("similar", True)
            else f"The most accurate differentially private release tried ({target}, less accurate than this one)")
    s = (f"{lead} brings the same attack to "
         f"{_pct(comp.get('risk'))} ({_pct(comp.get('ci_low'))} to {_pct(comp.get('ci_high'))}), "
         f"against a baseline of {_pct(comp.get('baseline', result.get('baseline')))}.")
    if comp.get("utility") is not None:
        s += f" Its accuracy: {html.escape(str(comp.get('utility')))}."
    return s


def _attack_name(result: Mapping[str, Any]) -> str:
    name = str(result.get("attack", "attack")).replace("_", " ")
    return name if name.endswith("attack") else f"{name} attack"


def overall_verdict(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The headline: worst severity across attacks, how many attacks succeed (against any release), a sentence."""
    order = ["high", "moderate", "low", "none", "unknown"]
    if not results:
        return {"severity": "unknown", "n_attacks": 0, "n_succeeded": 0,
                "text": "No attack was run, so this report makes no statement about re-identification risk."}
    by_attack: dict[str, list[str]] = {}
    targets: dict[str, set[str]] = {}
    for r in results:
        by_attack.setdefault(str(r.get("attack", "?")), []).append(severity(r))
        targets.setdefault(str(r.get("attack", "?")), set()).add(str(r.get("target", "")))
    several = any(len(t) > 1 for t in targets.values())
    worst_of = {a: min(sevs, key=order.index) for a, sevs in by_attack.items()}
    scored = [s for s in worst_of.values() if s != "unknown"]
    succeeded = sorted(a.replace("_", " ") for a, s in worst_of.items() if s in ("high", "moderate"))
    worst = min(scored, key=order.index) if scored else "unknown"
    n = len(by_attack)
    against = " against at least one release" if several else ""
    if succeeded:
        text = (f"{len(succeeded)} of {n} attack{'s' if n > 1 else ''} succeed{'s' if len(succeeded) == 1 else ''} "
                f"clearly better than guessing{against} ({', '.join(succeeded)}). "
                + ("At least one of these releases does not protect the individuals in it."
                   if several else
                   "This release does not protect the individuals in it as well as an anonymous release should."))
    elif worst == "low":
        text = (f"None of the {n} attacks succeeds clearly, but some do slightly better than guessing{against}. "
                "The release leaks a little about individuals.")
    elif worst == "none":
        text = (f"None of the {n} attacks does better than guessing. This is evidence, not proof, that the "
                "release protects individuals; only a formal guarantee such as differential privacy is proof.")
    else:
        text = "The attacks could not be scored."
    return {"severity": worst, "n_attacks": n, "n_succeeded": len(succeeded), "text": text}


__all__ = ["METRIC_LABELS", "SEVERITY_MARGINS", "SEVERITY_WORDS", "finding", "further_figures", "metric_label",
           "overall_verdict", "reference_level", "severity", "severity_words", "verdict_sentence", "yardstick"]
