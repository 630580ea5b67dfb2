"""Server-drawn SVG line charts: points in, coordinates out (no chart library, no script).

`line_chart` plots series over steps 0..n-1; `epoch_charts` plots a job's
loss and accuracy per epoch with one line per stage (each fold, then the final
model), on labelled axes. The template partials/_charts.html draws the result.
"""

from __future__ import annotations

import math

PALETTE = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0c8599", "#c2255c", "#5c940d", "#364fc7",
           "#a61e4d"]
FINAL_COLOR = "#212529"
MAX_DOTS = 60  # a series with more points is drawn as a line only: dots would hide it
WIDTH, HEIGHT = 560, 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 12, 10, 38  # room for the tick labels and the axis titles


def _finite(v) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def _plot(lines: list[dict], *, x_lo: float, x_hi: float, y_min: float | None, y_max: float | None,
          width: int, height: int, marks=(), x_ticks=None, x_label: str = "", y_label: str = "",
          legend: list[dict] | None = None) -> dict:
    """Scale `lines` ({"name", "xy": [(x, y)], "color", "dashed"}) into an SVG box."""
    values = [y for line in lines for _, y in line["xy"]]
    if not values:
        return {"width": width, "height": height, "lines": [], "ticks": [], "x_ticks": [], "marks": [],
                "empty": True}
    lo = min(values) if y_min is None else y_min
    hi = max(values) if y_max is None else y_max
    hi = hi if hi > lo else lo + 1
    step = _nice_step((hi - lo) / 4)
    if y_min is None:
        lo = math.floor(lo / step) * step
    if y_max is None:  # round the top up to a tick, so the labels read 0, 0.5, 1, 1.5 rather than 0.344, 0.687
        hi = lo + step * math.ceil((hi - lo) / step - 1e-9)
    w, h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    span = x_hi - x_lo

    def x(v: float) -> float:
        return PAD_L + (w * (v - x_lo) / span if span else w / 2)

    def y(v: float) -> float:
        return PAD_T + h * (1 - (v - lo) / (hi - lo))

    drawn = []
    for line in lines:
        pts = [(round(x(a), 1), round(y(b), 1), a, b) for a, b in line["xy"]]
        drawn.append({
            "name": line["name"], "color": line["color"], "dashed": line.get("dashed", False),
            "points": " ".join(f"{px},{py}" for px, py, _, _ in pts),
            "dots": [{"x": px, "y": py, "title": f"{line['name']}, {x_label or 'step'} {_num(a)}: {b:.3g}"}
                     for px, py, a, b in pts] if len(pts) <= MAX_DOTS else [],
        })
    count = round((hi - lo) / step)
    on_steps = abs(lo / step - round(lo / step)) < 1e-9 and abs(lo + count * step - hi) < 1e-9 * max(1.0, abs(hi))
    even = count <= 10 and on_steps  # else (both ends given, off the steps) five evenly spaced ticks
    values_at = [lo + step * t for t in range(count + 1)] if even else [lo + (hi - lo) * t / 4 for t in range(5)]
    ticks = [{"y": round(y(v), 1), "label": f"{round(v, 10):.3g}"} for v in values_at]
    return {
        "width": width, "height": height, "lines": drawn, "ticks": ticks, "empty": False,
        "x_ticks": [{"x": round(x(v), 1), "label": _num(v)} for v in (x_ticks or [])],
        "marks": [round(x(v), 1) for v in marks], "left": PAD_L, "right": width - PAD_R, "top": PAD_T,
        "bottom": height - PAD_B, "x_label": x_label, "y_label": y_label,
        "legend": legend if legend is not None else [{"name": d["name"], "color": d["color"], "dashed": d["dashed"]}
                                                      for d in drawn],
    }


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `raw`."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3g}"


def line_chart(series: dict[str, list[float | None]], *, width: int = WIDTH, height: int = 200,
               y_min: float | None = None, y_max: float | None = None, marks: list[int] = (),
               x_label: str = "", y_label: str = "", numbered: bool = False) -> dict:
    """Named series, one value per step 0..n-1 (None or NaN leaves a step out); `numbered`: steps 1..n,
    each labelled on the x axis (thinned past about ten)."""
    n = max((len(v) for v in series.values()), default=0)
    first = 1 if numbered else 0
    lines = [{"name": name, "color": PALETTE[k % len(PALETTE)],
              "xy": [(first + i, v) for i, v in enumerate(vs) if _finite(v)]}
             for k, (name, vs) in enumerate(series.items())]
    return _plot([ln for ln in lines if ln["xy"]], x_lo=first,
                 x_hi=max(first + n - 1, first), y_min=y_min, y_max=y_max, width=width, height=height, marks=marks,
                 x_label=x_label, y_label=y_label, x_ticks=epoch_ticks(n) if numbered and n else None)


def epoch_ticks(last: int, most: int = 10) -> list[int]:
    """Whole epochs 1..last, thinned to at most about `most` labels."""
    step = max(1, math.ceil(last / most))
    ticks = list(range(1, last + 1, step))
    return ticks if ticks[-1] == last or last - ticks[-1] < step / 2 else [*ticks, last]


def epoch_charts(epochs: list[dict]) -> dict:
    """Loss (train solid, validation dashed) and validation accuracy per epoch, one colour per stage.

    Stages are the k folds, then "final". A fold reports its validation numbers only at its last epoch (it
    never stops early), so those appear as single dots.
    """
    stages: dict[str, list[dict]] = {}
    for e in epochs:
        stages.setdefault(e["stage"], []).append(e)
    colors = {name: FINAL_COLOR if name == "final" else PALETTE[k % len(PALETTE)] for k, name in enumerate(stages)}
    last = max((e["epoch"] for e in epochs), default=1)
    ticks = epoch_ticks(last)
    legend = [{"name": name, "color": colors[name], "dashed": False} for name in stages]

    def xy(rows: list[dict], key: str) -> list[tuple[int, float]]:
        return [(r["epoch"], r[key]) for r in rows if _finite(r.get(key))]

    loss_lines, acc_lines = [], []
    for name, rows in stages.items():
        loss_lines.append({"name": f"{name} train", "color": colors[name], "xy": xy(rows, "train_loss")})
        loss_lines.append({"name": f"{name} validation", "color": colors[name], "dashed": True,
                           "xy": xy(rows, "val_loss")})
        acc_lines.append({"name": name, "color": colors[name], "xy": xy(rows, "val_accuracy")})
    common = {"x_lo": 1, "x_hi": max(last, 2), "width": WIDTH, "height": HEIGHT, "x_ticks": ticks,
              "x_label": "epoch"}
    loss = _plot([ln for ln in loss_lines if ln["xy"]], y_min=0, y_max=None, y_label="loss",
                 legend=[*legend, {"name": "train", "color": "#868e96", "dashed": False},
                         {"name": "validation", "color": "#868e96", "dashed": True}], **common)
    acc = _plot([ln for ln in acc_lines if ln["xy"]], y_min=0, y_max=1, y_label="accuracy", legend=legend,
                **common)
    return {"loss": loss, "accuracy": acc}
