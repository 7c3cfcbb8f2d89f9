"""The shim's process state machine, cell by cell, against containerd's facts.

The expected tables are written out here independently of the module (from
containerd's ``pkg/process/{init,exec,deleted}_state.go``): every (state,
operation) pair is checked, the allowed moves for their target and every
illegal move for its error kind and exact message.
"""

from __future__ import annotations

import itertools

import pytest

from seacan import errors
from seacan.shims.process import Op, ProcessState, Status

pytestmark = pytest.mark.unit

C, R, P, S, D = Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED, Status.DELETED
FP, NF = errors.FailedPrecondition, errors.NotFound

Cell = Status | tuple[type[errors.SeacanError], str]

INIT: dict[Status, dict[Op, Cell]] = {
    C: {
        Op.START: R,
        Op.PAUSE: (FP, "cannot pause task in created state"),
        Op.RESUME: (FP, "cannot resume task in created state"),
        Op.KILL: C,
        Op.DELETE: D,
        Op.EXIT: S,
        Op.UPDATE: C,
        Op.EXEC: C,
        Op.CHECKPOINT: (FP, "cannot checkpoint a task in created state"),
        Op.RESIZE: C,
    },
    R: {
        Op.START: (FP, "cannot start a running process"),
        Op.PAUSE: P,
        Op.RESUME: (FP, "cannot resume a running process"),
        Op.KILL: R,
        Op.DELETE: (FP, "cannot delete a running process"),
        Op.EXIT: S,
        Op.UPDATE: R,
        Op.EXEC: R,
        Op.CHECKPOINT: R,
        Op.RESIZE: R,
    },
    P: {
        Op.START: (FP, "cannot start a paused process"),
        Op.PAUSE: (FP, "cannot pause a paused container"),
        Op.RESUME: R,
        Op.KILL: P,
        Op.DELETE: (FP, "cannot delete a paused process"),
        Op.EXIT: S,
        Op.UPDATE: P,
        Op.EXEC: (FP, "cannot exec in a paused state"),
        Op.CHECKPOINT: P,
        Op.RESIZE: P,
    },
    S: {
        Op.START: (FP, "cannot start a stopped process"),
        Op.PAUSE: (FP, "cannot pause a stopped container"),
        Op.RESUME: (FP, "cannot resume a stopped container"),
        Op.KILL: (NF, "process already finished"),
        Op.DELETE: D,
        Op.EXIT: S,
        Op.UPDATE: (FP, "cannot update a stopped container"),
        Op.EXEC: (FP, "cannot exec in a stopped state"),
        Op.CHECKPOINT: (FP, "cannot checkpoint a stopped container"),
        Op.RESIZE: (FP, "cannot resize a stopped container"),
    },
    D: {
        Op.START: (FP, "cannot start a deleted process"),
        Op.PAUSE: (FP, "cannot pause a deleted process"),
        Op.RESUME: (FP, "cannot resume a deleted process"),
        Op.KILL: (NF, "cannot kill a deleted process"),
        Op.DELETE: (NF, "cannot delete a deleted process"),
        Op.EXIT: D,
        Op.UPDATE: (FP, "cannot update a deleted process"),
        Op.EXEC: (FP, "cannot exec in a deleted state"),
        Op.CHECKPOINT: (FP, "cannot checkpoint a deleted process"),
        Op.RESIZE: (FP, "cannot resize a deleted process"),
    },
}

NOT_EXEC = {
    op: (FP, f"cannot {op.value} an exec'd process")
    for op in (Op.PAUSE, Op.RESUME, Op.UPDATE, Op.EXEC, Op.CHECKPOINT)
}

EXEC: dict[Status, dict[Op, Cell]] = {
    C: {**NOT_EXEC, Op.START: R, Op.KILL: C, Op.DELETE: D, Op.EXIT: S, Op.RESIZE: C},
    R: {
        **NOT_EXEC,
        Op.START: (FP, "cannot start a running process"),
        Op.KILL: R,
        Op.DELETE: (FP, "cannot delete a running process"),
        Op.EXIT: S,
        Op.RESIZE: R,
    },
    S: {
        **NOT_EXEC,
        Op.START: (FP, "cannot start a stopped process"),
        Op.KILL: (NF, "process already finished"),
        Op.DELETE: D,
        Op.EXIT: S,
        Op.RESIZE: (FP, "cannot resize a stopped container"),
    },
    D: INIT[D],
}

CASES = [
    pytest.param(False, status, op, INIT[status][op], id=f"init-{status.value}-{op.value}")
    for status, op in itertools.product(Status, Op)
] + [
    pytest.param(True, status, op, EXEC[status][op], id=f"exec-{status.value}-{op.value}")
    for status, op in itertools.product(EXEC, Op)
]


def test_tables_are_complete() -> None:
    assert set(INIT) == set(Status)
    assert set(EXEC) == set(Status) - {P}
    for row in (*INIT.values(), *EXEC.values()):
        assert set(row) == set(Op)


@pytest.mark.parametrize(("exec_", "status", "op", "cell"), CASES)
def test_cell(exec_: bool, status: Status, op: Op, cell: Cell) -> None:
    state = ProcessState(status, exec=exec_)
    if isinstance(cell, Status):
        assert state.can(op)
        state.check(op)
        assert state.apply(op) == ProcessState(cell, exec=exec_)
    else:
        kind, message = cell
        assert not state.can(op)
        with pytest.raises(kind) as e:
            state.apply(op)
        assert type(e.value) is kind
        assert str(e.value) == message
        with pytest.raises(kind):
            state.check(op)


def test_apply_is_pure() -> None:
    before = ProcessState(R)
    after = before.apply(Op.PAUSE)
    assert before.status is R and after.status is P
    with pytest.raises(FP):
        before.apply(Op.RESUME)
    assert before == ProcessState(R)


def test_a_lifecycle() -> None:
    s = ProcessState()
    for op in (Op.EXEC, Op.START, Op.PAUSE, Op.KILL, Op.RESUME, Op.UPDATE, Op.EXIT, Op.DELETE):
        s = s.apply(op)
    assert s == ProcessState(D)
    assert s.status.reported == "stopped"


def test_exec_process_is_never_paused() -> None:
    with pytest.raises(errors.InvalidArgument):
        ProcessState(P, exec=True)


def test_reported_status() -> None:
    assert [s.reported for s in Status] == ["created", "running", "paused", "stopped", "stopped"]
