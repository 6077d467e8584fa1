"""A minimal observable: named events with plain-callback subscribers (no Qt, so the CLI and tests use it too)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable


class Observable:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[..., Any]]] = defaultdict(list)

    def subscribe(self, event: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call `callback(**payload)` whenever `event` is emitted; returns a function that unsubscribes."""
        self._subscribers[event].append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers[event]:
                self._subscribers[event].remove(callback)

        return unsubscribe

    def emit(self, event: str, **payload: Any) -> None:
        for callback in list(self._subscribers[event]):
            callback(**payload)
