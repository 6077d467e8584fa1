"""Subscribing Qt objects to the (Qt-free) session so that a deleted widget never receives an event."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject

from ..session import Session


def follow(owner: QObject, session: Session, event: str, callback: Callable[..., Any]) -> None:
    """Call `callback(**payload)` on every `event` of `session` until `owner` is destroyed."""
    unsubscribe = session.subscribe(event, callback)
    owner.destroyed.connect(lambda *_: unsubscribe())
