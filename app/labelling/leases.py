"""Short leases on queue images, so that people labelling the same queue at once see different images.

A lease lives in the web process and only steers which image a labeller is
shown next; it never blocks saving a label (two people may still label one
image, and both events are kept). A labeller (one browser) holds the image it
shows and, more loosely, the few it prefetches: others pass over those too
while other images are free, so that what a page prefetches is what it shows
next. A lease runs out after LEASE_S without a new request from its labeller,
and the image comes back for the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from app.config import Settings
from app.labelling.queries import queue_ids

LEASE_S = 60.0
MAX_HOLDER = 64


class Leases:
    """Which labeller holds which images, until when. Requests run in a thread pool, hence the lock."""

    def __init__(self, ttl_s: float = LEASE_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self._clock = ttl_s, clock
        self.lock = threading.RLock()
        self._images: dict[int, tuple[str, float, bool]] = {}   # image -> (holder, expires, shown)
        self._holders: dict[str, list[int]] = {}                 # holder -> images, the shown one first

    def _expire(self) -> None:
        now = self._clock()
        gone = [image for image, (_, until, _) in self._images.items() if until <= now]
        for image in gone:
            del self._images[image]
        if gone:
            self._holders = {h: kept for h, images in self._holders.items()
                             if (kept := [i for i in images if self._images.get(i, ("",))[0] == h])}

    def held_by_others(self, holder: str | None, *, shown_only: bool = False) -> list[int]:
        """Images other labellers hold: all of them, or only those their pages show now."""
        with self.lock:
            self._expire()
            return [image for image, (h, _, shown) in self._images.items()
                    if h != holder and (shown or not shown_only)]

    def take(self, holder: str, images: Sequence[int]) -> None:
        """`holder` now shows images[0] (whoever held it) and prefetches the rest that no one else holds."""
        with self.lock:
            for old in self._holders.pop(holder, []):
                if self._images.get(old, ("",))[0] == holder:
                    del self._images[old]
            until, mine = self._clock() + self.ttl_s, []
            for k, image in enumerate(images):
                owner = self._images.get(image)
                if k == 0 or owner is None:
                    self._images[image] = (holder, until, k == 0)
                    mine.append(image)
            self._holders[holder] = mine


def next_images(
    session: Session, leases: Leases, *, holder: str | None, after: int | None = None, skip: Sequence[int] = (),
    n: int = 4, queue: str = "unlabelled", order: str = "import", settings: Settings | None = None,
) -> list[int]:
    """Like `queue_ids`, but passing over images other labellers hold; the result is leased to `holder`.

    Images others only prefetch are given out when nothing else is left, so
    no one is told the queue is empty while it is not. Without a holder (an API
    client that does not say who it is) nothing is leased. Call it before any
    other read in `session`: its snapshot must not predate the lock, or an
    image labelled (and let go) a moment ago could look unlabelled and free.
    """
    holder = (holder or "")[:MAX_HOLDER] or None
    # One labeller at a time between "which images are free" and "these are mine": a query
    # takes a millisecond or two, and an optimistic retry loop is harder to get right.
    with leases.lock:
        for shown_only in (False, True):
            held = leases.held_by_others(holder, shown_only=shown_only)
            ids = queue_ids(session, after=after, skip=[*skip, *held], n=n, queue=queue, order=order,
                            settings=settings)
            if ids:
                break
        if holder is not None and ids:
            leases.take(holder, ids)
    return ids


def lease_image(leases: Leases, *, holder: str | None, image_id: int) -> None:
    """The labeller asked for this very image (after an undo): it is theirs, whoever held it."""
    if holder:
        leases.take(holder[:MAX_HOLDER], [image_id])
