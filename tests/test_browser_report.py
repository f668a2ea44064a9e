"""The report is a web page: open it in headless Chromium and check that it renders.

Chromium is installed by ``scripts/ensure_chromium.sh`` (Debian packages
``chromium`` and ``chromium-driver``) when missing. When it cannot be
installed the test fails under CI (``CI=true``) and is skipped elsewhere,
with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from privagg.harness.report import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
]


def _find() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find()
    reason = ""
    if path is None:
        script = ROOT / "scripts" / "ensure_chromium.sh"
        try:
            proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
            reason = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            reason = reason[0]
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        path = _find()
    if path is None:
        message = f"headless Chromium is not available and could not be installed: {reason}"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message + " (CI must run the browser test; fix the CI image or scripts/ensure_chromium.sh)")
        pytest.skip(message)
    return path


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def make_report(out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.linspace(0.05, 2, 30)
    ax.plot(x, 1 / (1 + x), "-o", label="DP")
    ax.fill_between(x, 0.9 / (1 + x), 1.1 / (1 + x), alpha=0.2)
    ax.legend()
    heat = plt.figure(figsize=(5, 4))
    heat.gca().imshow(np.random.default_rng(0).random((12, 12)), cmap="magma_r")
    results = [
        {"attack": "membership", "target": "suppression k=10", "risk": 0.81, "ci_low": 0.76, "ci_high": 0.86,
         "baseline": 0.5, "n_trials": 400, "background_knowledge": "the target's full trace",
         "metrics": {"tpr_at_1pct_fpr": 0.3}, "interpretation": "An attacker can tell who is in the data.",
         "dp_comparison": {"target": "DP epsilon=1", "risk": 0.53, "ci_low": 0.48, "ci_high": 0.58,
                           "baseline": 0.5, "epsilon": 1.0}},
        {"attack": "unicity", "target": "pseudonymised", "risk": 0.93, "ci_low": 0.91, "ci_high": 0.95,
         "baseline": 0.0, "n_trials": 2000, "background_knowledge": "4 points of each trace"},
    ]
    html, _ = write_report(out, {"name": "k=10 hourly footfall", "statistic": "footfall", "method": "suppression",
                                 "parameters": {"k": 10}}, results,
                           {"metrics": {"mean_relative_error": 0.12}, "dp_equivalent": {"epsilon": 1.0,
                                                                                       "metrics": {"mean_relative_error": 0.11}}},
                           {"frontier": fig, "heat map": (heat, "Footfall over the city")})
    plt.close("all")
    return html


def test_report_renders_in_chromium(chromium, tmp_path):
    html = make_report(tmp_path / "report")
    text = html.read_text()
    # self-contained: every image inline, nothing fetched from anywhere
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', text)) == 2

    dom = run_chromium(chromium, tmp_path, "--virtual-time-budget=5000", "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, f"no <body> in Chromium's DOM dump: {dom.stdout[:500]!r}"
    assert 'data-image-count="2"' in body.group(0)
    assert 'data-images-loaded="true"' in body.group(0), f"figures did not load: {body.group(0)}"
    assert "Verdict." in dom.stdout and "membership" in dom.stdout

    shot = tmp_path / "shot.png"
    proc = run_chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", html.as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    non_white = float((pixels.min(axis=2) < 0.94).mean())
    assert pixels.var() > 0.005, f"screenshot is nearly uniform (variance {pixels.var():.4f})"
    assert non_white > 0.05, f"screenshot is nearly blank ({100 * non_white:.1f}% non-white pixels)"


def test_the_image_check_catches_a_broken_figure(chromium, tmp_path):
    """The in-page check is able to fail: a corrupt image makes data-images-loaded false."""
    html = make_report(tmp_path / "report")
    text = html.read_text()
    broken = re.sub(r'src="data:image/png;base64,[^"]{40}', 'src="data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
                    text, count=1)
    assert broken != text
    bad = tmp_path / "broken.html"
    bad.write_text(broken)
    dom = run_chromium(chromium, tmp_path, "--virtual-time-budget=5000", "--dump-dom", bad.as_uri())
    assert 'data-images-loaded="false"' in re.search(r"<body[^>]*>", dom.stdout).group(0)
