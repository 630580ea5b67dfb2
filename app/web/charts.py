"""Server-drawn SVG line charts: points in, polyline coordinates out (no chart library)."""

from __future__ import annotations

import math

PALETTE = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700"]


def line_chart(series: dict[str, list[float | None]], *, width: int = 560, height: int = 200,
               y_min: float | None = None, y_max: float | None = None, marks: list[int] = ()) -> dict:
    """Scale named series (one value per x step) into an SVG box; None values break a line."""
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    n = max((len(v) for v in series.values()), default=0)
    if not values or n == 0:
        return {"width": width, "height": height, "lines": [], "ticks": [], "marks": [], "empty": True}
    lo = min(values) if y_min is None else y_min
    hi = max(values) if y_max is None else y_max
    hi = hi if hi > lo else lo + 1
    pad_l, pad_r, pad_t, pad_b = 40, 10, 10, 20
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(i: int) -> float:
        return pad_l + (w * i / (n - 1) if n > 1 else w / 2)

    def y(v: float) -> float:
        return pad_t + h * (1 - (v - lo) / (hi - lo))

    lines = []
    for k, (name, vs) in enumerate(series.items()):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v is not None and math.isfinite(v))
        lines.append({"name": name, "points": points, "color": PALETTE[k % len(PALETTE)]})
    ticks = [{"y": round(y(lo + (hi - lo) * t / 4), 1), "label": f"{lo + (hi - lo) * t / 4:.3g}"} for t in range(5)]
    return {"width": width, "height": height, "lines": lines, "ticks": ticks, "empty": False,
            "marks": [round(x(i), 1) for i in marks], "left": pad_l, "right": width - pad_r,
            "top": pad_t, "bottom": height - pad_b}


def epoch_charts(epochs: list[dict]) -> dict:
    """Loss and accuracy curves over all stages (folds, then final), with a mark where each stage starts."""
    marks = [i for i, e in enumerate(epochs) if i > 0 and e["stage"] != epochs[i - 1]["stage"]]
    loss = line_chart({"train loss": [e.get("train_loss") for e in epochs],
                       "val loss": [e.get("val_loss") for e in epochs]}, y_min=0, marks=marks)
    acc = line_chart({"val accuracy": [e.get("val_accuracy") for e in epochs]}, y_min=0, y_max=1, marks=marks)
    return {"loss": loss, "accuracy": acc}
