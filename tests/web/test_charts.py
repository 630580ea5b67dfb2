"""The job page's charts: one line per stage on axes titled epoch and loss / accuracy."""

from __future__ import annotations

from app.web.charts import epoch_charts, epoch_ticks, line_chart


def epochs(stages: dict[str, int], val_every_epoch: bool = False) -> list[dict]:
    rows = []
    for stage, n in stages.items():
        for e in range(1, n + 1):
            val = stage == "final" or val_every_epoch or e == n   # folds report validation at their last epoch
            rows.append({"stage": stage, "epoch": e, "train_loss": 2.0 / e,
                         "val_loss": 2.2 / e if val else None, "val_accuracy": 0.2 * e if val else None})
    return rows


def test_one_line_per_stage_with_titled_axes():
    charts = epoch_charts(epochs({"fold 1/3": 4, "fold 2/3": 4, "fold 3/3": 4, "final": 3}))
    loss, acc = charts["loss"], charts["accuracy"]
    assert (loss["x_label"], loss["y_label"], acc["x_label"], acc["y_label"]) == ("epoch", "loss", "epoch",
                                                                                  "accuracy")
    assert [t["label"] for t in loss["x_ticks"]] == ["1", "2", "3", "4"]
    names = [ln["name"] for ln in loss["lines"]]
    assert names == ["fold 1/3 train", "fold 1/3 validation", "fold 2/3 train", "fold 2/3 validation",
                     "fold 3/3 train", "fold 3/3 validation", "final train", "final validation"]
    assert [ln["name"] for ln in acc["lines"]] == ["fold 1/3", "fold 2/3", "fold 3/3", "final"]
    # A fold's single validation number is a visible dot, not an invisible one-point line.
    fold_acc = acc["lines"][0]
    assert len(fold_acc["dots"]) == 1 and fold_acc["dots"][0]["title"] == "fold 1/3, epoch 4: 0.8"
    # Each stage has its own colour (final in black), used by both charts and the legend.
    colours = [ln["color"] for ln in acc["lines"]]
    assert len(set(colours)) == 4 and colours[-1] == "#212529"
    assert [k["name"] for k in loss["legend"]] == ["fold 1/3", "fold 2/3", "fold 3/3", "final", "train",
                                                    "validation"]
    # x runs from epoch 1 at the left edge to the last epoch at the right edge, whatever the stage.
    first = [float(p.split(",")[0]) for p in loss["lines"][0]["points"].split()]
    assert first[0] == loss["left"] and first[-1] == loss["right"]
    # y: accuracy on 0..1, higher is up.
    ys = [d["y"] for d in acc["lines"][-1]["dots"]]
    assert ys == sorted(ys, reverse=True) and acc["ticks"][0]["label"] == "0" and acc["ticks"][-1]["label"] == "1"


def test_no_epochs_yet_and_long_runs():
    assert epoch_charts([])["loss"]["empty"] and epoch_charts([])["accuracy"]["empty"]
    running = epoch_charts([{"stage": "fold 1/5", "epoch": 1, "train_loss": 0.9, "val_loss": None,
                             "val_accuracy": None}])
    assert not running["loss"]["empty"] and running["accuracy"]["empty"]   # loss shows from the first epoch
    assert epoch_ticks(500) == [1, 51, 101, 151, 201, 251, 301, 351, 401, 451, 500]
    long = epoch_charts(epochs({"final": 200}, val_every_epoch=True))
    assert all(ln["dots"] == [] for ln in long["loss"]["lines"])   # a long line: no dot per point
    assert line_chart({"a": [None, float("nan")]})["empty"] and not line_chart({"a": [0.5, None, 0.7]})["empty"]
