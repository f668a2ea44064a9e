"""The HTML/JSON report: verdicts in plain words, self-contained HTML, JSON twin, atomic writes."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from privagg.harness.report import overall_verdict, severity, verdict_sentence, write_report  # noqa: E402


@dataclass(frozen=True)
class FakeAttackResult:
    """Shaped like privagg.attacks.result.AttackResult."""

    attack: str
    target: str
    risk: float
    ci_low: float
    ci_high: float
    baseline: float
    n_trials: int
    background_knowledge: str
    metrics: dict = field(default_factory=dict)
    interpretation: str = ""
    confidence_level: float = 0.95

    def to_dict(self):
        return dict(self.__dict__)


STRONG = FakeAttackResult("membership", "suppression k=10", 0.81, 0.76, 0.86, 0.5, 400, "the target's trace")
WEAK = {"attack": "differencing", "target": "DP epsilon=1", "risk": 0.52, "ci_low": 0.47, "ci_high": 0.57,
        "baseline": 0.5, "n_trials": 300, "background_knowledge": "both releases", "dp_bound": 0.731}


def test_severity_uses_the_interval_not_the_point():
    assert severity(STRONG.to_dict()) == "high"  # 0.76 - 0.5 > 0.2
    assert severity({"risk": 0.62, "ci_low": 0.56, "baseline": 0.5}) == "moderate"
    assert severity({"risk": 0.55, "ci_low": 0.51, "baseline": 0.5}) == "low"
    assert severity(WEAK) == "none"
    assert severity({"risk": None, "baseline": 0.5}) == "unknown"


def test_verdict_sentences():
    assert verdict_sentence(STRONG.to_dict()) == (
        "The membership attack succeeds often against suppression k=10: risk 81.0% (95% interval 76.0% to 86.0%), "
        "against 50.0% for an attacker who only guesses.")
    assert verdict_sentence(WEAK) == (
        "The differencing attack is not shown to do better than guessing against DP epsilon=1: risk 52.0% (95% interval "
        "47.0% to 57.0%), against 50.0% for an attacker who only guesses. The differential-privacy guarantee caps "
        "this risk at 73.1%.")
    trajectory = {"attack": "trajectory_recovery", "target": "raw footfall", "risk": 0.63, "ci_low": 0.6,
                  "ci_high": 0.66, "baseline": 0.13, "metrics": {"stay_put_accuracy": 0.6}}
    assert verdict_sentence(trajectory) == (
        "The trajectory recovery attack is not shown to do better than the simplest attack against raw footfall: "
        "risk 63.0% (95% interval 60.0% to 66.0%), against 13.0% for an attacker who only guesses. An attacker who "
        "only keeps everyone all day where the night counts put them is right 60.0% of the time; the verdict is "
        "judged against the stronger of the two.")
    # Judged against the stronger of guessing (13%) and staying put (60%): 0.6 - 0.6 is no margin.
    assert severity(trajectory) == "none"
    assert severity({**trajectory, "metrics": {}}) == "high"
    v = overall_verdict([STRONG.to_dict(), WEAK])
    assert (v["severity"], v["n_attacks"], v["n_succeeded"]) == ("high", 2, 1)
    assert v["text"].startswith("1 of 2 attacks succeeds clearly better than guessing (membership). This release")
    assert overall_verdict([WEAK])["text"].startswith("None of the 1 attacks does better than guessing.")
    assert overall_verdict([])["severity"] == "unknown"


def test_write_report_html_and_json(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "given.png"
    fig.savefig(png)
    claim = {"name": "hourly footfall, k=10", "description": "Counts below 10 suppressed <b>", "statistic": "footfall",
             "parameters": {"k": 10}}
    html_path, json_path = write_report(
        tmp_path / "out", claim, [STRONG, WEAK],
        {"mean_relative_error": 0.12},
        {"frontier": fig, "from-bytes": png.read_bytes(), "from-path": (png, "A caption")},
        provenance={"privagg_version": "0.1.0", "git_commit": "abc"},
    )
    plt.close(fig)
    html = html_path.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>Anonymisation report: hourly footfall, k=10</title>" in html
    # the verdict comes before any attack section
    assert html.index('id="verdict"') < html.index('id="attacks"') < html.index('id="glossary"')
    # user text is escaped
    assert "Counts below 10 suppressed &lt;b&gt;" in html
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(uris) == 3 and all(base64.b64decode(u).startswith(b"\x89PNG") for u in uris)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "A caption" in html and "Epsilon (ε)" in html
    assert "data-images-loaded" in html

    doc = json.loads(json_path.read_text())
    assert doc["verdict"]["n_succeeded"] == 1
    assert [a["attack"] for a in doc["attacks"]] == ["membership", "differencing"]
    assert doc["attacks"][0]["severity"] == "high" and doc["attacks"][0]["verdict"].startswith("The membership attack")
    assert doc["utility"] == {"metrics": {"mean_relative_error": 0.12}}
    assert [f["name"] for f in doc["figures"]] == ["frontier", "from-bytes", "from-path"]
    assert doc["provenance"]["git_commit"] == "abc"
    # atomic writes leave no temporary files behind; files are readable by others
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json"]
    assert html_path.stat().st_mode & 0o044


def test_dp_comparison_is_explained(tmp_path):
    r = dict(STRONG.to_dict(), dp_comparison={"target": "DP epsilon=1", "risk": 0.53, "ci_low": 0.48,
                                              "ci_high": 0.58, "baseline": 0.5})
    _, json_path = write_report(tmp_path, {"name": "x"}, [r])
    doc = json.loads(json_path.read_text())
    assert doc["attacks"][0]["comparison"] == (
        "A differentially private release of similar accuracy (DP epsilon=1) brings the same attack to 53.0% "
        "(48.0% to 58.0%), against a baseline of 50.0%.")


def test_bad_figure_is_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot embed int as a figure"):
        write_report(tmp_path, {}, [], None, {"x": 3})
    with pytest.raises(ValueError, match="figure is not a PNG image"):
        write_report(tmp_path, {}, [], None, {"x": b"GIF89a"})
    assert not (tmp_path / "report.html").exists()
