"""Reports for people: one self-contained ``report.html`` and its twin ``report.json``.

:func:`write_report` is the one entry point used by the regulator's audit
(``privagg audit CLAIM.toml --out DIR``), the demo and the experiment
harness. The HTML file embeds its figures as base64 PNG data URIs and its
style inline; it loads nothing from anywhere, so it can be mailed, archived
and opened offline. It opens with a verdict in plain words, then one section
per attack (what the attacker knew, how often the attack succeeded, with an
interval and the random-guess baseline, and how a differentially private
release of similar accuracy fares), the accuracy of the release, the figures,
and a glossary.

Inputs
------
``claim``
    What was released, as given by the user: any of ``name``, ``title``,
    ``description``, ``statistic``, ``level``, ``time_bin``, ``by``,
    ``method``, ``parameters``, ``data`` (other keys are shown as they are).
``results``
    One dict (or object with ``to_dict()``, e.g. an ``AttackResult``) per
    attack run, with the AttackResult fields ``attack, target, risk, ci_low,
    ci_high, baseline, n_trials, background_knowledge, metrics,
    interpretation, confidence_level``, and optionally ``dp_bound`` (the
    highest risk the DP guarantee allows, for DP targets) and
    ``dp_comparison`` (a dict with ``target``, ``risk``, ``ci_low``,
    ``ci_high``, ``baseline`` and optionally ``epsilon`` and ``utility``:
    the same attack against a DP release of similar accuracy).
``utility``
    ``{"metrics": {name: value}, "dp_equivalent": {"target": ..., "epsilon": ...,
    "metrics": {...}}}``; a flat ``{name: value}`` is read as ``metrics``.
``figures``
    ``{name: Figure | PNG bytes | path to a PNG | (any of those, caption)}``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from privagg.atomic import atomic_write_text

#: How far above the baseline the interval's lower end must be for each severity.
SEVERITY_MARGINS = (("high", 0.20), ("moderate", 0.05), ("low", 0.0))

ATTACK_TITLES: dict[str, str] = {
    "unicity": "Singling people out from a few known places and times (unicity)",
    "trajectory_recovery": "Rebuilding people's journeys from the counts (trajectory recovery)",
    "membership_inference": "Telling whether a given person is in the data (membership inference)",
    "reconstruction": "Rebuilding individual records from the tables (reconstruction)",
    "differencing": "Comparing two overlapping releases to isolate one person (differencing)",
}

GLOSSARY: dict[str, str] = {
    "Risk": "How often the attack succeeded in our trials, as a share (0% = never, 100% = always). "
            "What counts as success depends on the attack and is stated in each section.",
    "Confidence interval": "The range in which the true risk lies with 95% confidence, given the number of "
                           "trials. A narrow interval means the figure is precise.",
    "Baseline": "The risk of an attacker who learns nothing from the release and simply guesses. "
                "An attack matters only when it does clearly better than this.",
    "Differential privacy (DP)": "A mathematical guarantee that a release reveals almost nothing about any one "
                                 "person: it would look nearly the same whether or not that person's data were used.",
    "Epsilon (ε)": "The strength of the DP guarantee, always stated with its privacy unit: per subscriber over "
                   "the release window, or per subscriber-day (each day of a subscriber's data protected at ε; "
                   "over a week of daily releases the losses add up to 7 ε). Smaller is more private: at ε = 1 "
                   "no attack can be more than about 2.7 times as confident after seeing the release as before.",
    "Simplest attack (yardstick)": "What a trivial attack achieves, e.g. assuming everyone stays all day where "
                                   "they sleep. An attack is judged against the stronger of this and guessing.",
    "Small-count suppression (k)": "Hiding every count below k. Common in industry, but it gives no guarantee: "
                                   "the counts that remain can still reveal individuals.",
    "Coarsening": "Publishing larger areas or longer time periods. It lowers detail, not necessarily risk.",
    "Utility": "How close the published numbers are to the true ones (e.g. the mean relative error).",
}

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1d232a;margin:0;background:#f5f6f8;line-height:1.5}
main{max-width:980px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:1.8em;margin:.2em 0 .1em} h2{font-size:1.3em;margin-top:1.8em;border-bottom:2px solid #e3e6ea;padding-bottom:.2em}
h3{font-size:1.08em;margin:.2em 0 .4em}
.sub{color:#5b6570;margin-top:0}
.verdict{border-radius:10px;padding:16px 20px;margin:18px 0;font-size:1.08em;border-left:8px solid}
.high{background:#fdecea;border-color:#c62828}.moderate{background:#fff4e0;border-color:#ef8f00}
.low{background:#fffbe6;border-color:#c9a400}.none{background:#e9f6ec;border-color:#2e7d32}.unknown{background:#eef1f4;border-color:#78838f}
.card{border:1px solid #e3e6ea;border-radius:10px;padding:14px 18px;margin:14px 0}
.badge{display:inline-block;border-radius:12px;padding:1px 10px;font-size:.85em;font-weight:600;color:#fff;vertical-align:middle}
.badge.high{background:#c62828}.badge.moderate{background:#ef8f00}.badge.low{background:#c9a400}.badge.none{background:#2e7d32}.badge.unknown{background:#78838f}
.figure-risk{font-size:1.5em;font-weight:700}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:.93em}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef1;vertical-align:top} th{background:#f7f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:18px 0;text-align:center} figure img{max-width:100%;height:auto;border:1px solid #eceef1}
figcaption{color:#5b6570;font-size:.9em}
dl dt{font-weight:600;margin-top:.6em} dl dd{margin-left:1.2em}
.meta{color:#5b6570;font-size:.85em}
.bar{position:relative;height:14px;background:#eef1f4;border-radius:7px;margin:6px 0 2px;max-width:420px}
.bar .ci{position:absolute;top:0;height:14px;background:rgba(198,40,40,.35);border-radius:7px}
.bar .pt{position:absolute;top:-3px;width:4px;height:20px;background:#c62828}
.bar .bl{position:absolute;top:-3px;width:2px;height:20px;background:#1d232a}
"""

IMAGE_CHECK = """
<script>
(function(){function check(){var im=document.images,ok=true;for(var i=0;i<im.length;i++){if(!(im[i].complete&&im[i].naturalWidth>0)){ok=false;}}
document.body.setAttribute('data-image-count',String(im.length));document.body.setAttribute('data-images-loaded',ok?'true':'false');}
if(document.readyState==='complete'){check();}else{window.addEventListener('load',check);}})();
</script>
"""


# --------------------------------------------------------------------------- helpers


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
YARDSTICK_METRICS = ("stay_put_accuracy",)
#: How further figures are named for a reader (keys not listed are shown with underscores as spaces).
METRIC_LABELS = {
    "auc": "area under the ROC curve (AUC)",
    "tpr_at_0.01_fpr": "members caught at 1% false positives",
    "tpr_at_0.001_fpr": "members caught at 0.1% false positives",
    "dp_auc_bound": "highest AUC the DP guarantee allows",
    "dp_bound": "highest success the DP guarantee allows",
    "stay_put_accuracy": "share right when everyone stays where they slept",
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


def verdict_sentence(result: Mapping[str, Any]) -> str:
    """One plain-language sentence for a non-specialist."""
    name = _attack_name(result)
    sev = severity(result)
    level = _num(result.get("confidence_level")) or 0.95
    risk, lo, hi, base = (result.get(k) for k in ("risk", "ci_low", "ci_high", "baseline"))
    if sev == "unknown":
        return f"The {name} could not be scored against {result.get('target', 'this release')}."
    stay = yardstick(result)
    words = SEVERITY_WORDS[sev]
    if stay is not None and stay > (_num(base) or 0):
        words = words.replace("guessing", "the simplest attack")
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
        if key in HIDDEN_METRICS or value is None or isinstance(value, (list, dict, tuple)):
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


def _png_bytes(obj: Any) -> bytes:
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    if isinstance(obj, (str, Path)):
        return Path(obj).read_bytes()
    if hasattr(obj, "savefig"):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", dpi=110)
        return buf.getvalue()
    raise TypeError(f"cannot embed {type(obj).__name__} as a figure; pass a matplotlib Figure, PNG bytes or a path")


def _data_uri(png: bytes) -> str:
    if not png.startswith(b"\x89PNG"):
        raise ValueError("figure is not a PNG image")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _caption(name: str) -> str:
    return name.replace("-", " ").replace("_", " ").capitalize()


def _risk_bar(r: Mapping[str, Any]) -> str:
    vals = [_num(r.get(k)) for k in ("risk", "ci_low", "ci_high", "baseline")]
    if any(v is None or not 0 <= v <= 1 for v in vals):
        return ""
    risk, lo, hi, base = vals
    return (f'<div class="bar" title="risk {risk:.3f}, interval {lo:.3f}-{hi:.3f}, baseline {base:.3f}">'
            f'<div class="ci" style="left:{100 * lo:.1f}%;width:{max(100 * (hi - lo), 0.8):.1f}%"></div>'
            f'<div class="bl" style="left:{100 * base:.1f}%"></div>'
            f'<div class="pt" style="left:calc({100 * risk:.1f}% - 2px)"></div></div>'
            '<div class="meta">bar: 0% to 100%; shaded = interval, red = risk, black = guessing baseline</div>')


# --------------------------------------------------------------------------- the writer


def write_report(
    out_dir: str | Path,
    claim: Mapping[str, Any],
    results: Sequence[Any],
    utility: Mapping[str, Any] | None = None,
    figures: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.json`` into ``out_dir``, each atomically.

    Parameters
    ----------
    out_dir
        Directory to write into (created if needed).
    claim
        What was released (see the module docstring).
    results
        Attack results: AttackResult objects or dicts, optionally with ``dp_bound`` and ``dp_comparison``.
    utility
        Accuracy of the release, and of the DP release it is compared with.
    figures
        Named figures to embed.
    title
        Report title; by default from the claim's ``title`` or ``name``.
    provenance
        Version, commit, seeds, times: shown at the bottom and stored in the JSON.
    notes
        Extra caveats shown under the verdict.

    Returns
    -------
    tuple of Path
        The HTML and JSON paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    claim = _plain(dict(claim))
    rows = [_plain(r) for r in results]
    utility = _plain(dict(utility or {}))
    if utility and "metrics" not in utility and "dp_equivalent" not in utility:
        utility = {"metrics": utility}
    title = title or claim.get("title") or (f"Anonymisation report: {claim['name']}" if claim.get("name")
                                            else "Anonymisation report")
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    verdict = overall_verdict(rows)
    for r in rows:
        r["severity"] = severity(r)
        r["verdict"] = verdict_sentence(r)
        comp = _comparison_sentence(r)
        if comp:
            r["comparison"] = comp

    embedded: list[tuple[str, str, str]] = []
    for name, fig in (figures or {}).items():
        caption = _caption(name)
        if isinstance(fig, tuple):
            fig, caption = fig
        embedded.append((name, caption, _data_uri(_png_bytes(fig))))

    doc = {
        "title": title,
        "generated": generated,
        "verdict": verdict,
        "claim": claim,
        "attacks": rows,
        "utility": utility,
        "figures": [{"name": n, "caption": c} for n, c, _ in embedded],
        "notes": list(notes),
        "glossary": GLOSSARY,
        "provenance": _plain(dict(provenance or {})),
    }
    html_text = _render_html(doc, embedded)
    from privagg.harness.store import publish

    html_path = publish(atomic_write_text(out / "report.html", html_text))
    json_path = publish(atomic_write_text(out / "report.json", json.dumps(doc, indent=2, ensure_ascii=False)))
    return html_path, json_path


def _kv_table(d: Mapping[str, Any]) -> str:
    rows = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            v = ", ".join(f"{a} = {b}" for a, b in v.items()) or "none"
        elif isinstance(v, list):
            v = ", ".join(map(str, v)) or "none"
        rows.append(f"<tr><th>{html.escape(str(k).replace('_', ' '))}</th><td>{html.escape(str(v))}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _render_html(doc: dict[str, Any], figures: list[tuple[str, str, str]]) -> str:
    e = html.escape
    v = doc["verdict"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        f"<title>{e(doc['title'])}</title><style>{CSS}</style></head>",
        "<body><main>",
        f"<h1>{e(doc['title'])}</h1>",
        f'<p class="sub">Generated by privagg on {e(doc["generated"])}</p>',
        f'<section id="verdict" class="verdict {e(v["severity"])}"><strong>Verdict.</strong> {e(v["text"])}</section>',
    ]
    for note in doc["notes"]:
        parts.append(f'<p class="meta">{e(note)}</p>')

    if doc["claim"]:
        parts.append('<h2 id="claim">What was released</h2>')
        desc = doc["claim"].get("description")
        if desc:
            parts.append(f"<p>{e(str(desc))}</p>")
        parts.append(_kv_table({k: val for k, val in doc["claim"].items() if k not in ("description", "title")}))

    parts.append('<h2 id="attacks">Attacks</h2>')
    if not doc["attacks"]:
        parts.append("<p>No attack was run.</p>")
    by_attack: dict[str, list[dict[str, Any]]] = {}
    for r in doc["attacks"]:
        by_attack.setdefault(str(r.get("attack", "attack")), []).append(r)
    for name, rs in by_attack.items():
        parts.append(f'<section class="card attack" id="attack-{e(name)}">')
        parts.append(f"<h3>{e(ATTACK_TITLES.get(name, name.replace('_', ' ').capitalize()))}</h3>")
        if len(rs) == 1:
            r = rs[0]
            parts.append(f'<p><span class="badge {e(r["severity"])}">{e(SEVERITY_WORDS[r["severity"]])}</span></p>')
            parts.append(f'<p class="figure-risk">risk {e(_pct(r.get("risk")))} '
                         f'<span class="meta">(interval {e(_pct(r.get("ci_low")))} to {e(_pct(r.get("ci_high")))}; '
                         f'guessing: {e(_pct(r.get("baseline")))}; {e(_fmt(r.get("n_trials")))} trials)</span></p>')
            parts.append(_risk_bar(r))
            parts.append(f"<p>{e(r['verdict'])}</p>")
            if r.get("interpretation"):
                parts.append(f"<p>{e(str(r['interpretation']))}</p>")
            if r.get("comparison"):
                parts.append(f"<p><strong>With differential privacy:</strong> {e(r['comparison'])}</p>")
            if r.get("background_knowledge"):
                parts.append(f'<p class="meta"><strong>What the attacker knew:</strong> {e(str(r["background_knowledge"]))}</p>')
            extra = further_figures(r.get("metrics") or {})
            if extra:
                parts.append(f'<p class="meta">Further figures: {e(extra)}</p>')
            if r.get("variants"):
                shown = "; ".join(f"{k} {_fmt(v)}" for k, v in r["variants"].items())
                parts.append(f'<p class="meta">Variants run (held-out figures): {e(shown)}</p>')
        else:
            worst = max(rs, key=lambda r: (_num(r.get("ci_low")) or -1) - (_num(r.get("baseline")) or 0))
            parts.append(f"<p>{e(worst['verdict'])}</p>")
            if worst.get("background_knowledge"):
                parts.append(f'<p class="meta"><strong>What the attacker knew:</strong> {e(str(worst["background_knowledge"]))}</p>')
            parts.append("<table><tr><th>release</th><th>risk</th><th>interval</th><th>guessing</th>"
                         "<th>simplest attack</th><th>DP cap</th><th>verdict</th></tr>")
            for r in rs:
                parts.append(
                    f"<tr><td>{e(str(r.get('target', '')))}</td><td class=num>{e(_pct(r.get('risk')))}</td>"
                    f"<td class=num>{e(_pct(r.get('ci_low')))} to {e(_pct(r.get('ci_high')))}</td>"
                    f"<td class=num>{e(_pct(r.get('baseline')))}</td>"
                    f"<td class=num>{e(_pct(yardstick(r))) if yardstick(r) is not None else ''}</td><td class=num>"
                    f"{e(_pct(r.get('dp_bound'))) if r.get('dp_bound') is not None else ''}</td>"
                    f"<td><span class=\"badge {e(r['severity'])}\">{e(SEVERITY_WORDS[r['severity']])}</span></td></tr>")
            parts.append("</table>")
            comps = [r["comparison"] for r in rs if r.get("comparison")]
            if comps:
                parts.append(f"<p><strong>With differential privacy:</strong> {e(comps[0])}</p>")
        parts.append("</section>")

    util = doc["utility"]
    if util:
        parts.append('<h2 id="utility">Accuracy of the release</h2>')
        metrics = util.get("metrics") or {}
        dp_eq = util.get("dp_equivalent") or {}
        dp_metrics = dp_eq.get("metrics") or {}
        if metrics and isinstance(next(iter(metrics.values())), Mapping):
            # {target: {metric: value}}
            names = sorted({m for vals in metrics.values() for m in vals})
            parts.append("<table><tr><th>release</th>" + "".join(f"<th>{e(n.replace('_', ' '))}</th>" for n in names) + "</tr>")
            for target, vals in metrics.items():
                parts.append(f"<tr><td>{e(str(target))}</td>" + "".join(f"<td class=num>{_fmt(vals.get(n))}</td>" for n in names) + "</tr>")
            parts.append("</table>")
        elif metrics:
            head = "<tr><th>measure</th><th>this release</th>"
            if dp_metrics:
                label = dp_eq.get("target") or (f"DP, ε = {dp_eq['epsilon']:g}" if _num(dp_eq.get("epsilon")) else "DP")
                head += f"<th>{e(str(label))}</th>"
            parts.append("<table>" + head + "</tr>")
            for n, val in metrics.items():
                dp_cell = f"<td class=num>{_fmt(dp_metrics.get(n))}</td>" if dp_metrics else ""
                parts.append(f"<tr><td>{e(n.replace('_', ' '))}</td><td class=num>{_fmt(val)}</td>{dp_cell}</tr>")
            parts.append("</table>")
        other = {k: val for k, val in util.items() if k not in ("metrics", "dp_equivalent")}
        if other:
            parts.append(_kv_table(other))

    if figures:
        parts.append('<h2 id="figures">Figures</h2>')
        for name, caption, uri in figures:
            parts.append(f'<figure id="fig-{e(name)}"><img alt="{e(caption)}" src="{uri}">'
                         f"<figcaption>{e(caption)}</figcaption></figure>")

    parts.append('<h2 id="glossary">What the terms mean</h2><dl>')
    for term, meaning in doc["glossary"].items():
        parts.append(f"<dt>{e(term)}</dt><dd>{e(meaning)}</dd>")
    parts.append("</dl>")
    prov = doc["provenance"]
    if prov:
        keep = {k: prov[k] for k in ("privagg_version", "git_commit", "spec_hash", "seeds", "started", "finished")
                if k in prov}
        parts.append('<h2 id="provenance">How this report was made</h2>' + _kv_table(keep or prov))
    parts.append("</main>")
    parts.append(IMAGE_CHECK)
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- experiments


def experiment_results(results: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Attack results and utility, averaged over repetitions, from an experiment's results table.

    For each non-DP result, ``dp_comparison`` is the DP configuration whose
    primary utility error is closest to (and not worse than, when possible) its own.
    """
    import pandas as pd

    from privagg.harness.plots import DP_BOUNDS, frontier_table

    df: pd.DataFrame = results
    util = df[(df["kind"] == "utility") & (df["status"] == "ok")]
    utility_metrics = list(dict.fromkeys(util["metric"]))
    primary = "mean_relative_error" if "mean_relative_error" in utility_metrics else (utility_metrics or [None])[0]
    out: list[dict[str, Any]] = []
    risk = df[(df["kind"] == "risk") & (df["metric"] == "risk") & (df["status"] == "ok")]
    for attack in dict.fromkeys(risk["attack"]):
        table = frontier_table(df, attack, primary) if primary else pd.DataFrame()
        if table.empty:
            continue
        dp = table[table["family"] == "dp"]
        for row in table.itertuples(index=False):
            item: dict[str, Any] = {
                "attack": attack, "target": row.config, "risk": row.risk, "ci_low": row.ci_low,
                "ci_high": row.ci_high, "baseline": row.baseline, "n_trials": None,
                "metrics": {} if row.microdata else {primary: row.utility}, "statistic": row.statistic,
            }
            bound = DP_BOUNDS.get((attack, "risk"))
            if row.family == "dp" and pd.notna(row.bound):
                item["dp_bound"] = float(row.bound)
            elif row.family == "dp" and bound is not None and pd.notna(row.epsilon):
                item["dp_bound"] = bound(float(row.epsilon), 0.0)
            if row.family != "dp" and len(dp):
                better = dp[dp["utility"] <= row.utility]
                pick = (better.sort_values("utility", ascending=False) if len(better)
                        else dp.sort_values("utility")).iloc[0]
                item["dp_comparison"] = {"target": pick["config"], "risk": pick["risk"], "ci_low": pick["ci_low"],
                                         "ci_high": pick["ci_high"], "baseline": pick["baseline"],
                                         "epsilon": pick["epsilon"], "similar": bool(len(better)),
                                         "utility": f"{primary.replace('_', ' ')} {pick['utility']:.3g} vs {row.utility:.3g}"}
            bk = df[(df["attack"] == attack) & (df["config"] == row.config) & (df["metric"] == "risk")]["detail"]
            try:
                detail = json.loads(bk.dropna().iloc[0]) if len(bk.dropna()) else {}
            except (ValueError, TypeError):
                detail = {}
            item["background_knowledge"] = detail.get("background_knowledge", "")
            out.append(item)
    metrics = {
        cfg: {m: float(g[g["metric"] == m]["value"].mean()) for m in utility_metrics}
        for cfg, g in util.groupby("config", sort=False)
    }
    return out, {"metrics": metrics}


def write_experiment_report(directory: str | Path, figures: Mapping[str, Sequence[Path]] | None = None) -> tuple[Path, Path]:
    """``report.html`` / ``report.json`` of an experiment directory, with its PNG figures embedded."""
    from privagg.harness.store import ResultStore

    store = ResultStore(directory)
    results = store.read_results()
    provenance = store.read_provenance()
    spec = provenance.get("spec", {})
    rows, utility = experiment_results(results)
    pngs = {name: next(p for p in paths if str(p).endswith(".png")) for name, paths in (figures or {}).items()
            if any(str(p).endswith(".png") for p in paths)}
    claim = {"name": spec.get("name", store.dir.name), "description": spec.get("description", ""),
             "statistics": [s.get("statistic") + f" by {s.get('level')} x {s.get('time_bin')}" for s in spec.get("statistics", [])],
             "anonymisers": [a.get("family") for a in spec.get("anonymisers", [])],
             "repetitions": len(spec.get("seeds", [])) or None, "world": spec.get("world", {})}
    return write_report(store.dir, claim, rows, utility, pngs,
                        title=f"Experiment report: {claim['name']}", provenance=provenance,
                        notes=["Each risk is averaged over the repetitions; the interval shown is the mean of the "
                               "per-repetition intervals."])


__all__ = ["GLOSSARY", "experiment_results", "finding", "further_figures", "overall_verdict", "reference_level",
           "severity", "verdict_sentence", "yardstick",
           "write_experiment_report", "write_report"]
