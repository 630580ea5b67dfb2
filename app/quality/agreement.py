"""How well two sets of labels for the same images agree: raw agreement and Cohen's kappa. Pure numpy.

Used for blind re-label audits: ``first`` is the label an image had, ``second``
the label given again without seeing the first. Kappa corrects agreement for
what two labellers with these class frequencies would reach by chance.
"""

from __future__ import annotations

import numpy as np


def _pairs(first, second) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(first), np.asarray(second)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"first and second must be 1-d and of equal length, not {a.shape} and {b.shape}")
    return a, b


def agreement(first, second) -> float:
    """Share of pairs with the same label.

    Parameters
    ----------
    first, second : array_like, shape (N,)
        Two labels per image (any comparable values).

    Returns
    -------
    float
        In [0, 1]; NaN when there are no pairs.
    """
    a, b = _pairs(first, second)
    return float(np.mean(a == b)) if len(a) else float("nan")


def cohens_kappa(first, second) -> float:
    """Cohen's kappa: ``(p_o - p_e) / (1 - p_e)``.

    Parameters
    ----------
    first, second : array_like, shape (N,)
        Two labels per image.

    Returns
    -------
    float
        1 for perfect agreement, 0 for what chance gives, below 0 for worse.
        NaN when there are no pairs. When chance agreement is already 1 (both
        labellers used one and the same class throughout), kappa is 1.
    """
    a, b = _pairs(first, second)
    if len(a) == 0:
        return float("nan")
    values, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    k, n = len(values), len(a)
    ca, cb = codes[:n], codes[n:]
    observed = float(np.mean(ca == cb))
    expected = float(np.dot(np.bincount(ca, minlength=k), np.bincount(cb, minlength=k)) / (n * n))
    if expected >= 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def agreement_by_group(first, second, groups) -> dict:
    """Agreement and kappa within each group (a week, an annotator).

    Parameters
    ----------
    first, second : array_like, shape (N,)
    groups : array_like, shape (N,)

    Returns
    -------
    dict
        group value -> {"n", "agreement", "kappa"}, in sorted group order.
    """
    a, b = _pairs(first, second)
    g = np.asarray(groups)
    if g.shape != a.shape:
        raise ValueError("groups must have one value per pair")
    out = {}
    for value in np.unique(g):
        member = g == value
        key = value.item() if hasattr(value, "item") else value
        out[key] = {"n": int(member.sum()), "agreement": agreement(a[member], b[member]),
                    "kappa": cohens_kappa(a[member], b[member])}
    return out


def agreement_by_class(first, second) -> dict:
    """Per class of the first label: how often the second agrees, and one-vs-rest kappa.

    Parameters
    ----------
    first, second : array_like, shape (N,)

    Returns
    -------
    dict
        class -> {"n": pairs whose first label is the class, "agreement": share of
        those the second label repeats, "kappa": kappa of "is this class" between
        the two labellings over all pairs}.
    """
    a, b = _pairs(first, second)
    out = {}
    for value in np.unique(a):
        member = a == value
        key = value.item() if hasattr(value, "item") else value
        out[key] = {"n": int(member.sum()), "agreement": float(np.mean(b[member] == value)),
                    "kappa": cohens_kappa(member, b == value)}
    return out
