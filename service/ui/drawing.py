"""What the pages draw on the server: the loss chart as SVG geometry, and word differences
between an answer and its reference. No JavaScript: the browser only renders."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.jobs.events import MetricsRow

__all__ = ["Chart", "Series", "Span", "loss_chart", "word_diff"]

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # the class that colours it
    path: str  # SVG path data, "M x,y L x,y …" (a new M after a non-finite loss)
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    series: list[Series]
    x_ticks: list[tuple[float, str]]  # (x, label)
    y_ticks: list[tuple[float, str]]  # (y, label)
    plot: tuple[int, int, int, int]  # left, top, right, bottom of the plot area
    empty: bool = field(default=False)


def _nice_ticks(low: float, high: float, count: int) -> list[float]:
    """About `count` round numbers spanning [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2e}"


def loss_chart(rows: Sequence[MetricsRow]) -> Chart:
    """Training and validation loss against the step, scaled into a fixed-size plot."""
    plot = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    values = [
        v for r in rows for v in (r.train_loss, r.valid_loss) if v is not None and math.isfinite(v)
    ]
    if not rows or not values:
        return Chart(WIDTH, HEIGHT, [], [], [], plot, empty=True)
    steps = [r.step for r in rows]
    x_low, x_high = min(steps), max(steps)
    y_low, y_high = 0.0, max(values) * 1.05 or 1.0
    if x_high == x_low:
        x_high = x_low + 1

    def x_of(step: float) -> float:
        return round(plot[0] + (step - x_low) / (x_high - x_low) * (plot[2] - plot[0]), 2)

    def y_of(value: float) -> float:
        return round(plot[3] - (value - y_low) / (y_high - y_low) * (plot[3] - plot[1]), 2)

    series = []
    for name, css, attribute in (
        ("training loss", "train", "train_loss"),
        ("validation loss", "valid", "valid_loss"),
    ):
        points: list[tuple[float, float]] = []
        commands: list[str] = []
        pen_down = False
        for row in rows:
            value = getattr(row, attribute)
            if value is None:
                continue  # not measured at this step (validation runs now and then): join over it
            if not math.isfinite(value):
                pen_down = False  # a diverged step: a gap in the curve
                continue
            point = (x_of(row.step), y_of(value))
            points.append(point)
            commands.append(f"{'L' if pen_down else 'M'}{point[0]},{point[1]}")
            pen_down = True
        if points:
            series.append(Series(name=name, css=css, path=" ".join(commands), points=points))
    x_ticks = [(x_of(s), _label(s)) for s in _nice_ticks(x_low, x_high, 6)]
    y_ticks = [(y_of(v), _label(v)) for v in _nice_ticks(y_low, y_high, 4)]
    return Chart(WIDTH, HEIGHT, series, x_ticks, y_ticks, plot)


@dataclass(frozen=True)
class Span:
    text: str
    same: bool  # True where the answer says what the reference says


_WORDS = re.compile(r"\s+|[^\s]+")


def word_diff(answer: str, reference: str) -> list[Span]:
    """The answer cut into runs of words that are, or are not, in the reference (in order), so
    a page can mark what differs."""
    ours = _WORDS.findall(answer)
    theirs = _WORDS.findall(reference)
    matcher = difflib.SequenceMatcher(a=ours, b=theirs, autojunk=False)
    spans: list[Span] = []
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if i1 == i2:
            continue
        text = "".join(ours[i1:i2])
        same = tag == "equal"
        if spans and spans[-1].same == same:
            spans[-1] = Span(spans[-1].text + text, same)
        else:
            spans.append(Span(text, same))
    return spans
