"""Events: envelopes, topics, and the publisher/subscriber roles (containerd's ``events``).

An event is a protobuf message sent under a *topic* (``/tasks/exit``) in a
namespace; subscribers receive :class:`Envelope` values in publish order::

    await events.publish("/tasks/exit", TaskExit(container_id="web", exit_status=3))
    async for env in events.subscribe(['topic~="/tasks/"', "namespace==default"]):
        ...

The payload is kept as an undecoded ``Any`` whose type URL is the bare
message name (``containerd.events.TaskExit``), as containerd's typeurl
writes it. Subscribe filters use :mod:`seacan.filters` over ``topic`` and
``namespace`` (the fields ctr and Docker filter on).

Implementations: the exchange in ``seacan.services.tasks.events`` and
:class:`seacan.events.proxy.RemoteEvents`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.protobuf.message import Message

from seacan import errors, scope
from seacan.containers import AnyValue

TASK_CREATE = "/tasks/create"
TASK_START = "/tasks/start"
TASK_EXIT = "/tasks/exit"
TASK_DELETE = "/tasks/delete"
TASK_OOM = "/tasks/oom"
TASK_EXEC_ADDED = "/tasks/exec-added"
TASK_EXEC_STARTED = "/tasks/exec-started"
TASK_PAUSED = "/tasks/paused"
TASK_RESUMED = "/tasks/resumed"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One published event, as subscribers see it."""

    timestamp: datetime
    namespace: str
    topic: str
    event: AnyValue


def validate_topic(topic: str) -> str:
    """containerd's topic rule: a leading ``/``, each component an identifier."""
    if not topic:
        raise errors.InvalidArgument("must not be empty for topic")
    if not topic.startswith("/"):
        raise errors.InvalidArgument(f"must start with '/' for topic {topic!r}")
    for part in topic[1:].split("/"):
        scope.validate_identifier(part, f"topic {topic!r} component")
    return topic


def any_of(msg: Message) -> AnyValue:
    """A message as an event payload with a bare type URL."""
    return AnyValue(type_url=msg.DESCRIPTOR.full_name, value=msg.SerializeToString())


class Publisher(Protocol):
    async def publish(self, topic: str, event: Message) -> None:
        """Publish in the request's namespace (required)."""
        ...


class Forwarder(Protocol):
    async def forward(self, envelope: Envelope) -> None:
        """Publish an envelope as is (its namespace and timestamp are kept)."""
        ...


class Subscriber(Protocol):
    def subscribe(self, filters: Sequence[str] = ()) -> AsyncIterator[Envelope]:
        """Envelopes published from now on that match any of ``filters``, in order."""
        ...
