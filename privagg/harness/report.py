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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from privagg.atomic import atomic_write_text
from privagg.harness.verdicts import (  # noqa: F401 - re-exported: the report's judgement of a result
    _comparison_sentence, severity_words, _fmt, _num, _pct, _plain, finding, further_figures,
    overall_verdict, reference_level, severity, verdict_sentence, yardstick,
)


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
    e = html.escape
    rows = []
    for k, v in d.items():
        if isinstance(v, Mapping) and any(len(str(b)) > 40 for b in v.values()):
            cell = "<br>".join(f"<strong>{e(str(a))}</strong>: {e(str(b))}" for a, b in v.items()) or "none"
        elif isinstance(v, Mapping):
            cell = e(", ".join(f"{a} = {_fmt(b) if _num(b) is not None else b}" for a, b in v.items()) or "none")
        elif isinstance(v, list):
            cell = e(", ".join(map(str, v)) or "none")
        else:
            cell = e(str(v))
        rows.append(f"<tr><th>{e(str(k).replace('_', ' '))}</th><td>{cell}</td></tr>")
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
            parts.append(f'<p><span class="badge {e(r["severity"])}">{e(severity_words(r))}</span></p>')
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
            with_stay = any(yardstick(r) is not None for r in rs)
            with_cap = any(r.get("dp_bound") is not None for r in rs)
            parts.append("<table><tr><th>release</th><th>risk</th><th>interval</th><th>guessing</th>"
                         + ("<th>simplest attack</th>" if with_stay else "")
                         + ("<th>DP cap</th>" if with_cap else "") + "<th>verdict</th></tr>")
            for r in rs:
                stay = yardstick(r)
                parts.append(
                    f"<tr><td>{e(str(r.get('target', '')))}</td><td class=num>{e(_pct(r.get('risk')))}</td>"
                    f"<td class=num>{e(_pct(r.get('ci_low')))} to {e(_pct(r.get('ci_high')))}</td>"
                    f"<td class=num>{e(_pct(r.get('baseline')))}</td>"
                    + (f"<td class=num>{e(_pct(stay)) if stay is not None else ''}</td>" if with_stay else "")
                    + (f"<td class=num>{e(_pct(r.get('dp_bound'))) if r.get('dp_bound') is not None else ''}</td>"
                       if with_cap else "")
                    + f"<td><span class=\"badge {e(r['severity'])}\">{e(severity_words(r))}</span></td></tr>")
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


__all__ = ["GLOSSARY", "finding", "further_figures", "overall_verdict", "reference_level", "severity",
           "verdict_sentence", "write_report", "yardstick"]
