"""The HTML report's pieces, from results alone: loss curves, durations, the title
(tests/integration/test_report.py checks a real study's page, in a browser too)."""

from __future__ import annotations

import re

from nst.files.report import duration, loss_curve, render
from nst.results import StudyResults


def test_loss_curve_is_an_svg_of_each_term_on_a_log_scale() -> None:
    history = [{"content": 10.0 / s, "style": 1000.0 / s**2, "total": 10.0 / s + 1000.0 / s**2}
               for s in range(1, 301)]
    svg = loss_curve(history)
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()  # type: ignore[union-attr]
    assert len(points) <= 152  # long histories are thinned
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[-1] > ys[0]  # a falling loss is drawn going down
    assert "1e+03" in svg and "step 300" in svg
    assert loss_curve([]) == ""


def test_durations_read_naturally() -> None:
    assert [duration(s) for s in (4.25, 125, 3725)] == ["4.2 s", "2 min 05 s", "1 h 02 min"]


def test_the_page_is_titled_by_the_study() -> None:
    results = StudyResults("Layers & weights", "0.0", "2.0", "x86_64", "2026-12-06 12:00:00")
    page = render(results)
    assert "<title>Layers &amp; weights</title>" in page and "<h1>Layers &amp; weights</h1>" in page
    assert "nst sweep" not in page.split("</header>")[0]
