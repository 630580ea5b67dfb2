"""The words stored in the status, kind and resolution columns, as types.

They live with the tables so that every layer can name them: the domain
packages write them, the web edge's response models (app/web/schemas) declare
them, so the OpenAPI document lists every value a client can meet. Each
package's tuple of values (`app.training.jobs.STATUSES`, ...) is read from
these, so a new value is added here once.
"""

from __future__ import annotations

from typing import Literal, get_args

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# import: predictions that came with imported labels (a finished job the worker never runs)
JobKind = Literal["train", "predict", "embed", "analyse", "search", "report", "import"]
FlagKind = Literal["mislabel", "duplicate", "audit", "rereview", "outlier"]
# pending: an audit waiting for its blind second label, not yet a question for a reviewer
FlagStatus = Literal["open", "resolved", "cancelled", "pending"]
FlagResolution = Literal["keep", "relabel", "ambiguous", "exclude", "cancelled"]
LabelKind = Literal["manual", "import", "migration", "review", "audit", "undo", "bulk"]
Split = Literal["train", "val", "test"]


def values(kind) -> tuple[str, ...]:
    """The values of a Literal type, in the order written."""
    return get_args(kind)
