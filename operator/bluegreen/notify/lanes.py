"""The bounded queue of deliveries: one FIFO lane per target of a release, each worked by at most one sender
at a time, in order (Started reaches a receiver before Promoted). A lane whose head waits for a retry is
skipped until it is due. Lanes belong to a group (the destination: a webhook's host and port, a Slack
target's Secret), and at most ``group_limit`` lanes of one group are worked at once: a receiver that hangs
holds that many sender threads at most, however many releases notify it, and the other senders go on with
the other destinations.

``put`` never blocks: when ``capacity`` deliveries are queued it drops the oldest one that no sender is
working on and returns it (the caller logs it). Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lanes(Generic[T]):
    """Items of ``T`` in lanes keyed by a hashable; ``take`` hands out the head of the lane due first."""

    def __init__(self, capacity: int, monotonic: Callable[[], float] = time.monotonic, *,
                 group_limit: int = 1) -> None:
        self.capacity = capacity
        self.group_limit = group_limit
        self._monotonic = monotonic
        self._lanes: dict[Hashable, deque[tuple[int, T]]] = {}
        self._groups: dict[Hashable, Hashable] = {}
        """Each lane's group (given by its latest ``put``)."""
        self._working: dict[Hashable, int] = {}
        """Busy lanes per group."""
        self._due: dict[Hashable, float] = {}
        """Lanes with a head nobody works on, and when it may be taken."""
        self._busy: dict[Hashable, Hashable] = {}
        """Lanes a sender works on, with the group they were taken in."""
        self._size = 0
        self._seq = 0
        self._closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return self._size

    def put(self, lane: Hashable, item: T, group: Hashable = None) -> T | None:
        """Queue ``item`` at the end of ``lane``, of ``group`` (None: a group of its own); return the item dropped
        to make room, if any."""
        with self._cond:
            dropped = self._drop_oldest() if self._size >= self.capacity else None
            self._groups[lane] = group if group is not None else ("lane", lane)
            self._seq += 1
            self._lanes.setdefault(lane, deque()).append((self._seq, item))
            self._size += 1
            if lane not in self._busy and lane not in self._due:
                self._due[lane] = self._monotonic()
            self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None) -> tuple[Hashable, T] | None:
        """The head of the lane due first, once due (the lane is then busy until ``done``); None when closed,
        or after ``timeout`` seconds without one."""
        deadline = None if timeout is None else self._monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = self._monotonic()
                free = [lane for lane in self._due
                        if self._working.get(self._groups.get(lane), 0) < self.group_limit]
                lane = min(free, key=self._due.__getitem__, default=None)
                if lane is not None and self._due[lane] <= now:
                    del self._due[lane]
                    group = self._busy[lane] = self._groups.get(lane)
                    self._working[group] = self._working.get(group, 0) + 1
                    return lane, self._lanes[lane][0][1]
                wait = None if lane is None else self._due[lane] - now
                if deadline is not None:
                    if now >= deadline:
                        return None
                    wait = deadline - now if wait is None else min(wait, deadline - now)
                self._cond.wait(wait)
            return None

    def done(self, lane: Hashable, retry_in: float | None = None) -> None:
        """The sender is finished with the head of ``lane``: dropped (``retry_in`` None), or taken again in
        ``retry_in`` seconds."""
        with self._cond:
            if lane in self._busy:
                group = self._busy.pop(lane)
                self._working[group] -= 1
                if not self._working[group]:
                    del self._working[group]
                self._cond.notify_all()  # a lane of that group may be taken now
            queue = self._lanes.get(lane)
            if queue is None:
                return
            if retry_in is None:
                queue.popleft()
                self._size -= 1
            if not queue:
                del self._lanes[lane]
                self._groups.pop(lane, None)
                return
            self._due[lane] = self._monotonic() + (retry_in or 0.0)
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiting ``take`` (they return None); what is queued is dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _drop_oldest(self) -> T | None:
        """Remove the oldest item no sender works on (a busy lane's head is kept)."""
        oldest: tuple[int, Hashable, int] | None = None
        for lane, queue in self._lanes.items():
            index = 1 if lane in self._busy else 0
            if index < len(queue) and (oldest is None or queue[index][0] < oldest[0]):
                oldest = (queue[index][0], lane, index)
        if oldest is None:
            return None
        _, lane, index = oldest
        queue = self._lanes[lane]
        item = queue[index][1]
        del queue[index]
        self._size -= 1
        if not queue:
            del self._lanes[lane]
            self._due.pop(lane, None)
            self._groups.pop(lane, None)
        elif index == 0 and lane in self._due:
            self._due[lane] = min(self._due[lane], self._monotonic())
        return item
