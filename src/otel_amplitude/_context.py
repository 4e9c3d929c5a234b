"""Who the current code runs for: identity bound to the context (contextvars).

``bind(user_id=...)`` in a request middleware makes every event emitted while handling that
request carry that user, across threads started with copied contexts and across asyncio tasks
(each task runs in a copy of the context that created it).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, replace
from types import TracebackType

__all__ = ["Identity", "bind", "current_identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """The ids an event gets when its source does not name them."""

    user_id: str | None = None
    device_id: str | None = None
    session_id: int | None = None
    tenant: str | None = None


_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "otel_amplitude_identity", default=None
)


def current_identity() -> Identity | None:
    """The identity bound in the current context, if any."""
    return _identity.get()


class bind:  # noqa: N801 - used like a function: bind(user_id=...) or `with bind(...):`
    """Bind a user, device or session to the current context.

    Called plainly, the binding lasts for the rest of the context (a request handler, a task).
    Used as a context manager, it is undone on exit. Ids not given keep their bound values.
    ``tenant`` picks the destination of the events (when destinations are configured).
    """

    __slots__ = ("_token",)

    def __init__(
        self,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        session_id: int | None = None,
        tenant: str | None = None,
    ) -> None:
        current = _identity.get() or Identity()
        changes: dict[str, object] = {}
        if user_id is not None:
            changes["user_id"] = user_id
        if device_id is not None:
            changes["device_id"] = device_id
        if session_id is not None:
            changes["session_id"] = session_id
        if tenant is not None:
            if not isinstance(tenant, str) or not tenant:
                raise TypeError("tenant must be a non-empty string")
            changes["tenant"] = tenant
        self._token = _identity.set(replace(current, **changes))  # type: ignore[arg-type]

    def __enter__(self) -> bind:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _identity.reset(self._token)
