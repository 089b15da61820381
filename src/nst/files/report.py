"""The study report: one static index.html beside the study's images.

The page needs no server and no network: styles and script are inline, images
are referenced by relative path inside the study folder, and loss curves are
inline SVG drawn from each run's loss history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

from nst.files.atomic import atomic_path
from nst.record import RunRecord
from nst.results import Comparison, StudyResults, StudyRun, SweepResult

SECTIONS = {
    "reconstruction": ("Content reconstruction",
                       "What a layer of VGG19 keeps of a photo: images optimized from noise to "
                       "match the photo's features at one layer only."),
    "texture": ("Texture synthesis",
                "Textures optimized from noise to match a painting's Gram matrices (which "
                "features occur together, regardless of where) over a set of layers."),
    "transfer": ("Style transfer",
                 "Content features of the photo and Gram matrices of the painting, matched at once; "
                 "their weights decide the balance."),
    "init": ("Init comparison", "Where the optimization starts changes where it ends."),
    "weighting": ("Input-image weighting",
                  "Starting points between the photo and pure noise."),
    "other": ("More sweeps", "Further parameter sweeps of this study."),
}
CURVE_COLOURS = {"total": "#222222", "content": "#1f6fb5", "style": "#c2362b", "tv": "#2e8b3d"}
# Settings shown once per sweep when every run shares them.
SHARED_SETTINGS = ("size", "steps", "optimizer", "content_weight", "style_weight", "init", "seed")
# What a card's badge means (hover text): why no time was spent on this run now.
BADGE_HELP = {
    "resumed": "made by an earlier command with the same settings and inputs; not recomputed",
    "copied": "the same run appears earlier in this study; its image was copied",
}

CSS = """
:root { --ink: #222; --muted: #666; --line: #ddd; --paper: #fff; --tint: #f5f5f2; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: var(--paper); }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 40px 0 4px; font-size: 22px; border-bottom: 2px solid var(--ink); }
h3 { margin: 28px 0 4px; font-size: 18px; }
nav a { margin-right: 14px; }
.muted, .meta { color: var(--muted); }
.meta { font-size: 13px; margin: 2px 0 10px; }
figure { margin: 0; }
/* Grids are drawn at a readable size (files/grid.py): show them 1:1 and scroll wide ones. */
.grid { overflow-x: auto; }
.grid img { max-width: none; height: auto; border: 1px solid var(--line); }
.grid figcaption { font-size: 13px; color: var(--muted); }
details { margin: 10px 0 0; }
summary { cursor: pointer; color: var(--muted); font-size: 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 14px;
         margin-top: 10px; }
.card { background: var(--tint); padding: 8px; border-radius: 6px; font-size: 12.5px; }
.card img { width: 100%; height: auto; display: block; image-rendering: auto; }
.card .label { font-weight: 600; font-size: 13.5px; margin-top: 4px; }
.card svg { display: block; margin-top: 4px; width: 100%; height: auto; }
.badge { font-size: 11px; color: var(--muted); border: 1px solid var(--line); border-radius: 3px;
         padding: 0 3px; margin-left: 4px; font-weight: normal; }
.legend span { margin-right: 8px; white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.slider { background: var(--tint); padding: 12px; border-radius: 8px; max-width: 560px; margin: 10px 0; }
.slider img { width: 100%; height: auto; display: block; }
.slider-controls { display: flex; align-items: center; gap: 12px; margin-top: 8px; }
.slider input { flex: 1; }
.slider output { font-weight: 600; min-width: 6em; }
.slider-caption { font-size: 13px; color: var(--muted); margin: 4px 0 0; }
footer { max-width: 1200px; margin: 40px auto; padding: 12px 20px; border-top: 1px solid var(--line);
         color: var(--muted); font-size: 13px; }
"""

SCRIPT = """
document.querySelectorAll('.slider').forEach(function (box) {
  var frames = JSON.parse(box.dataset.frames);
  var image = box.querySelector('img');
  var range = box.querySelector('input');
  var label = box.querySelector('output');
  var caption = box.querySelector('.slider-caption');
  function show(index) {
    var frame = frames[index];
    image.src = frame.src;
    image.alt = frame.label;
    label.textContent = frame.label;
    caption.textContent = frame.caption;
  }
  range.addEventListener('input', function () { show(Number(range.value)); });
  show(Number(range.value));
});
"""


def duration(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def caption_stats(record: RunRecord) -> tuple[str, ...]:
    """Wall time and final weighted losses, as grids and the report show them."""
    losses = record.losses
    if not losses:  # --method fast: one pass, no loss computed
        return (f"{duration(record.wall_time_s)} · {record.config.method}", "no optimization")
    terms = [f"{name} {value:.3g}" for name, value in losses.items() if name != "total"]
    return (f"{duration(record.wall_time_s)} · {record.steps} steps",
            " · ".join(terms) if len(terms) > 1 else f"loss {losses['total']:.3g}")


def loss_curve(history: Sequence[dict[str, float]], width: int = 200, height: int = 64) -> str:
    """An inline SVG of every loss term per step, on a log scale."""
    if not history:
        return ""
    names = [n for n in CURVE_COLOURS if n in history[0]]
    if names == ["content", "total"] or names == ["style", "total"]:
        names = ["total"]  # one term: its curve is the total
    stride = max(1, math.ceil(len(history) / 150))
    points = list(range(0, len(history), stride))
    if points[-1] != len(history) - 1:
        points.append(len(history) - 1)
    # A term that starts at 0 (content loss from a content init) would stretch
    # the log scale without end: draw it at the smallest positive value instead.
    positive = [history[i][n] for i in points for n in names if history[i][n] > 0]
    floor = min(positive, default=1.0)
    logs = {n: [math.log10(max(history[i][n], floor)) for i in points] for n in names}
    low = min(min(v) for v in logs.values())
    high = max(max(v) for v in logs.values())
    span = max(high - low, 1e-9)
    left, top, bottom = 34, 4, 14
    plot_w, plot_h = width - left - 4, height - top - bottom
    last = max(len(history) - 1, 1)
    lines = []
    for name in names:
        xy = " ".join(f"{left + plot_w * i / last:.1f},{top + plot_h * (high - v) / span:.1f}"
                      for i, v in zip(points, logs[name], strict=True))
        lines.append(f'<polyline points="{xy}" fill="none" stroke="{CURVE_COLOURS[name]}" '
                     f'stroke-width="1.4"><title>{name}</title></polyline>')
    final = ", ".join(f"{n} {history[-1][n]:.3g}" for n in names)
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="loss per step (log scale); final {escape(final)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="9" font-family="sans-serif" fill="#666">'
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ddd"/>'
        f'<text x="{left - 3}" y="{top + 7}" text-anchor="end">{10 ** high:.0e}</text>'
        f'<text x="{left - 3}" y="{top + plot_h}" text-anchor="end">{10 ** low:.0e}</text>'
        f'<text x="{left}" y="{height - 3}">1</text>'
        f'<text x="{width - 4}" y="{height - 3}" text-anchor="end">step {len(history)}</text>'
        + "".join(lines) + "</svg>"
    )


def _legend(history: Sequence[dict[str, float]]) -> str:
    if not history:
        return ""
    names = [n for n in CURVE_COLOURS if n in history[0]]
    if len(names) <= 2:
        return ""
    return '<div class="legend">' + "".join(
        f'<span style="color:{CURVE_COLOURS[n]}">— {n}</span>' for n in names) + "</div>"


def _card(run: StudyRun) -> str:
    src = escape(run.image)
    badge = "" if run.status == "ran" else (
        f'<span class="badge" title="{escape(BADGE_HELP[run.status])}">{escape(run.status)}</span>')
    time_line, loss_line = caption_stats(run.record)
    history = run.record.history
    return (
        f'<figure class="card"><a href="{src}"><img src="{src}" alt="{escape(run.label)}">'
        f'</a><figcaption><div class="label">{escape(run.label)}{badge}</div>'
        f"<div>{escape(time_line)}</div><div>{escape(loss_line)}</div>"
        f'{loss_curve(history)}{_legend(history)}</figcaption></figure>'
    )


def _shared_settings(runs: Sequence[StudyRun]) -> str:
    parts = []
    for key in SHARED_SETTINGS:
        values = {json.dumps(getattr(r.record.config, key)) for r in runs}
        value = getattr(runs[0].record.config, key)
        if len(values) == 1 and value not in (None, 0, 0.0):
            text = f"{value:g}" if isinstance(value, float) else str(value)
            parts.append(f"{key.replace('_', ' ')} {text}")
    return " · ".join(parts)


def _comparison_table(comparisons: Sequence[Comparison]) -> str:
    if not comparisons:
        return ""
    term = comparisons[0].term
    rows = "".join(
        f"<tr><td>{escape(c.labels[0])} vs {escape(c.labels[1])}</td>"
        f"<td>{c.pixel_difference:.1f}</td><td>{c.loss_a:.4g}</td><td>{c.loss_b:.4g}</td>"
        f"<td>{c.loss_difference:.3g} ({c.relative_loss_difference:.1%})</td>"
        f"<td>{c.cross_loss:.4g}</td><td>{_number(c.start_loss)}</td></tr>"
        for c in comparisons
    )
    return (
        f"<table><tr><th>runs</th><th>pixel difference<br>(mean, 0–255)</th><th>{term} loss a</th>"
        f"<th>{term} loss b</th><th>{term} loss difference</th>"
        f"<th>{term} loss of a<br>against b's targets</th><th>for scale: {term} loss<br>"
        f"at the first step</th></tr>{rows}</table>"
    )


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _slider(sweep: SweepResult) -> str:
    runs = sweep.runs
    frames = [{"src": r.image, "label": r.label, "caption": " · ".join(caption_stats(r.record))}
              for r in runs]
    first = frames[0]
    # Three times the pictures' size at most (larger only blurs them), but
    # wide enough for the controls.
    width = max(360, 3 * max(int(r.record.config.size or 256) for r in runs) + 24)
    return (
        f'<div class="slider" style="max-width: {width}px" '
        f'data-frames="{escape(json.dumps(frames, ensure_ascii=False))}">'
        f'<img src="{escape(first["src"])}" alt="{escape(first["label"])}">'
        f'<div class="slider-controls"><input type="range" min="0" max="{len(runs) - 1}" step="1" '
        f'value="0" aria-label="{escape(sweep.axes[0].name)}"><output>{escape(first["label"])}'
        f'</output></div><p class="slider-caption">{escape(first["caption"])}</p></div>'
    )


def _sweep(sweep: SweepResult) -> str:
    runs = sweep.runs
    if not runs:
        return ""
    compute = sum(r.record.wall_time_s for r in runs)
    meta = f"{len(runs)} runs · {duration(compute)} of compute"
    settings = _shared_settings(runs)
    grid = ""
    if sweep.grid:
        src = escape(sweep.grid)
        grid = (f'<figure class="grid"><a href="{src}"><img src="{src}" alt="grid: '
                f'{escape(sweep.title)}"></a><figcaption>{escape(sweep.title)}: '
                f'{escape(", ".join(a.name.replace("_", " ") for a in sweep.axes))}'
                f"{' (rows, then columns)' if len(sweep.axes) > 1 else ''}</figcaption></figure>")
    return (
        f'<section class="sweep" id="sweep-{escape(sweep.name)}"><h3>{escape(sweep.title)}</h3>'
        f'<p>{escape(sweep.description)}</p><p class="meta">{escape(meta)}'
        f'{"<br>Shared settings: " + escape(settings) if settings else ""}</p>'
        f'{_comparison_table(sweep.comparisons)}{_slider(sweep) if sweep.slider else ""}{grid}'
        f'<details open><summary>Every run: image, time, final losses, loss per step</summary>'
        f'<div class="cards">{"".join(_card(r) for r in runs)}</div></details></section>'
    )


def render(results: StudyResults) -> str:
    """The report page for the contents of results.json."""
    title = escape(results.title)
    body, nav = [], []
    for key, (heading, intro) in SECTIONS.items():
        sweeps = [s for s in results.sweeps if s.section == key and s.runs]
        if not sweeps:
            continue
        nav.append(f'<a href="#{key}">{escape(heading)}</a>')
        body.append(f'<h2 id="{key}">{escape(heading)}</h2><p class="muted">{escape(intro)}</p>'
                    + "".join(_sweep(s) for s in sweeps))
    summary = (
        f"{len(results.runs)} runs ({results.count('ran')} computed now, {results.count('resumed')} "
        f"made by an earlier command, {results.count('copied')} shared between sweeps) · "
        f"{duration(results.compute_time_s)} of compute · "
        f"{duration(results.elapsed_s)} this session"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{title}</title><style>{CSS}</style></head><body>'
        f'<header><h1>{title}</h1><p class="muted">{escape(results.created)} · nst '
        f'{escape(results.nst_version)} · torch {escape(results.torch_version)} · '
        f'{escape(summary)}</p><nav>{"".join(nav)}<a href="results.json">results.json</a></nav></header>'
        f'<main>{"".join(body)}</main><footer>Made by <code>nst study</code>. Losses are the weighted '
        "terms the optimizer minimized; times are wall-clock seconds per run.</footer>"
        f"<script>{SCRIPT}</script></body></html>"
    )


def write_report(results: StudyResults, path: Path) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(render(results), encoding="utf-8")
    return path
