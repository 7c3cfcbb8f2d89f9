"""The process state machine of the shim: pure, no I/O.

The facts are containerd's (``pkg/process/init_state.go``, ``exec_state.go``,
``deleted_state.go``): the same moves, the same refusals, the same messages.
The shim asks ``state.can(op)`` / ``state.apply(op)`` before it runs runc and
records the new state after; an illegal move raises before anything happens.

The init process (the container's first process)::

              start             pause
    CREATED --------> RUNNING <-------> PAUSED
       |                 |      resume     |
       | exit            | exit            | exit
       v                 v                 |
    STOPPED <------------+-----------------+
       |
       | delete          (CREATED --delete--> DELETED as well)
       v
    DELETED

Operations that leave the state as it is (kill, update, exec, checkpoint,
resize) are allowed where containerd allows them. A state change by a
process's own death is ``EXIT``; it is never refused (a second exit is a
no-op). An exec'd process has no PAUSED state and no pause, resume, update,
exec or checkpoint of its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from seacan import errors


class Status(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DELETED = "deleted"

    @property
    def reported(self) -> str:
        """The status containerd reports: a deleted process reads as ``stopped``."""
        return "stopped" if self is Status.DELETED else self.value


class Op(enum.Enum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    KILL = "kill"
    DELETE = "delete"
    EXIT = "exit"
    UPDATE = "update"
    EXEC = "exec"
    CHECKPOINT = "checkpoint"
    RESIZE = "resize"


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: type[errors.SeacanError]
    message: str

    def error(self) -> errors.SeacanError:
        return self.kind(self.message)


def _fp(message: str) -> Refusal:
    return Refusal(errors.FailedPrecondition, message)


def _nf(message: str) -> Refusal:
    return Refusal(errors.NotFound, message)


C, R, P, S, D = Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED, Status.DELETED

_FINISHED = _nf("process already finished")  # runc's "container not running", as containerd maps it

# A cell is the state after the move, or why the move is refused.
_Table = dict[Status, dict[Op, "Status | Refusal"]]

_DELETED_ROW: dict[Op, Status | Refusal] = {
    Op.START: _fp("cannot start a deleted process"),
    Op.PAUSE: _fp("cannot pause a deleted process"),
    Op.RESUME: _fp("cannot resume a deleted process"),
    Op.KILL: _nf("cannot kill a deleted process"),
    Op.DELETE: _nf("cannot delete a deleted process"),
    Op.EXIT: D,
    Op.UPDATE: _fp("cannot update a deleted process"),
    Op.EXEC: _fp("cannot exec in a deleted state"),
    Op.CHECKPOINT: _fp("cannot checkpoint a deleted process"),
    Op.RESIZE: _fp("cannot resize a deleted process"),
}

INIT: _Table = {
    C: {
        Op.START: R,
        Op.PAUSE: _fp("cannot pause task in created state"),
        Op.RESUME: _fp("cannot resume task in created state"),
        Op.KILL: C,
        Op.DELETE: D,
        Op.EXIT: S,
        Op.UPDATE: C,
        Op.EXEC: C,
        Op.CHECKPOINT: _fp("cannot checkpoint a task in created state"),
        Op.RESIZE: C,
    },
    R: {
        Op.START: _fp("cannot start a running process"),
        Op.PAUSE: P,
        Op.RESUME: _fp("cannot resume a running process"),
        Op.KILL: R,
        Op.DELETE: _fp("cannot delete a running process"),
        Op.EXIT: S,
        Op.UPDATE: R,
        Op.EXEC: R,
        Op.CHECKPOINT: R,
        Op.RESIZE: R,
    },
    P: {
        Op.START: _fp("cannot start a paused process"),
        Op.PAUSE: _fp("cannot pause a paused container"),
        Op.RESUME: R,
        Op.KILL: P,
        Op.DELETE: _fp("cannot delete a paused process"),
        Op.EXIT: S,
        Op.UPDATE: P,
        Op.EXEC: _fp("cannot exec in a paused state"),
        Op.CHECKPOINT: P,
        Op.RESIZE: P,
    },
    S: {
        Op.START: _fp("cannot start a stopped process"),
        Op.PAUSE: _fp("cannot pause a stopped container"),
        Op.RESUME: _fp("cannot resume a stopped container"),
        Op.KILL: _FINISHED,
        Op.DELETE: D,
        Op.EXIT: S,
        Op.UPDATE: _fp("cannot update a stopped container"),
        Op.EXEC: _fp("cannot exec in a stopped state"),
        Op.CHECKPOINT: _fp("cannot checkpoint a stopped container"),
        Op.RESIZE: _fp("cannot resize a stopped container"),
    },
    D: _DELETED_ROW,
}


def _exec_row(cells: dict[Op, Status | Refusal]) -> dict[Op, Status | Refusal]:
    """An exec'd process's row: what it cannot do at all, then ``cells``."""
    only_init = (Op.PAUSE, Op.RESUME, Op.UPDATE, Op.EXEC, Op.CHECKPOINT)
    return {**{op: _fp(f"cannot {op.value} an exec'd process") for op in only_init}, **cells}


EXEC: _Table = {
    C: _exec_row({Op.START: R, Op.KILL: C, Op.DELETE: D, Op.EXIT: S, Op.RESIZE: C}),
    R: _exec_row(
        {
            Op.START: _fp("cannot start a running process"),
            Op.KILL: R,
            Op.DELETE: _fp("cannot delete a running process"),
            Op.EXIT: S,
            Op.RESIZE: R,
        }
    ),
    S: _exec_row(
        {
            Op.START: _fp("cannot start a stopped process"),
            Op.KILL: _FINISHED,
            Op.DELETE: D,
            Op.EXIT: S,
            Op.RESIZE: _fp("cannot resize a stopped container"),
        }
    ),
    D: _DELETED_ROW,  # containerd shares one deleted state between both kinds
}


@dataclass(frozen=True, slots=True)
class ProcessState:
    """Where one process stands; ``exec`` marks an exec'd process, else the init process."""

    status: Status = Status.CREATED
    exec: bool = False

    def __post_init__(self) -> None:
        if self.status not in self._table:
            raise errors.InvalidArgument(f"an exec'd process is never {self.status.value}")

    @property
    def _table(self) -> _Table:
        return EXEC if self.exec else INIT

    def can(self, op: Op) -> bool:
        return isinstance(self._table[self.status][op], Status)

    def check(self, op: Op) -> None:
        """Raise the refusal for ``op`` (FailedPrecondition or NotFound), if any."""
        cell = self._table[self.status][op]
        if isinstance(cell, Refusal):
            raise cell.error()

    def apply(self, op: Op) -> ProcessState:
        """The state after ``op``; raises its refusal if ``op`` is not allowed here."""
        cell = self._table[self.status][op]
        if isinstance(cell, Refusal):
            raise cell.error()
        return ProcessState(cell, self.exec)
