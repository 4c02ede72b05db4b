"""The old library's handler argument: ``Request(data, respond())``, for
jobs mounted untyped with ``Worker.handle``."""

from __future__ import annotations

import threading
from typing import Any

from ..context import Context


class Request:
    """One call of an untyped job: its parameters as JSON (``data``), its id,
    job and context; ``respond(value)`` sets the reply (the first call
    wins; without it the handler's return value is the reply)."""

    def __init__(self, data: Any, context: Context) -> None:
        self.data = data
        self.context = context
        self._lock = threading.Lock()
        self._responded = False
        self._response: Any = None

    @property
    def id(self) -> str:
        return self.context.id

    @property
    def job(self) -> str:
        return self.context.job

    def respond(self, value: Any = None) -> bool:
        """Sets the reply; True when this call set it (the first one)."""
        with self._lock:
            if self._responded:
                return False
            self._responded = True
            self._response = value
            return True

    @property
    def responded(self) -> bool:
        return self._responded

    def result(self, returned: Any) -> Any:
        """The reply: what ``respond`` was given, else ``returned``."""
        with self._lock:
            return self._response if self._responded else returned

    def __repr__(self) -> str:
        return f"Request(id={self.id!r}, job={self.job!r}, data={self.data!r})"
