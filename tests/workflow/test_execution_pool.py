"""The local stack's execution pool: a few at a time, first executions of a certificate before repeats."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from jitr.local.stack import ExecutionPool

WAIT_SECONDS = 10.0


@dataclass
class FakeExecution:
    """Stands for moto's ExecutionWorker: an input, and a run that records itself (and may wait)."""

    label: str
    certificate_id: str | None
    ran: list[str]
    gate: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def _evaluation_details(self) -> Any:
        event = {"certificateId": self.certificate_id} if self.certificate_id else {"other": 1}
        return SimpleNamespace(execution_details=SimpleNamespace(inpt=event))

    def _execution_logic(self) -> None:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT_SECONDS)
        self.ran.append(self.label)


def submit(pool: ExecutionPool, execution: FakeExecution) -> FakeExecution:
    pool.submit(cast(ExecutionWorker, execution))
    return execution


def test_first_executions_of_a_certificate_run_before_its_repeats() -> None:
    ran: list[str] = []
    pool = ExecutionPool(1)
    pool.start()
    gate = threading.Event()
    blocker = submit(pool, FakeExecution("a1", "a", ran, gate))
    assert blocker.started.wait(WAIT_SECONDS)
    for label, certificate in (("a2", "a"), ("b1", "b"), ("a3", "a"), ("x", None), ("c1", "c"), ("b2", "b")):
        submit(pool, FakeExecution(label, certificate, ran))
    last = submit(pool, FakeExecution("y", None, ran))
    gate.set()
    done = threading.Event()
    submit(pool, FakeExecution("end", "a", ran, started=done))
    assert done.wait(WAIT_SECONDS)
    assert last.started.is_set()
    pool.stop(WAIT_SECONDS)
    assert ran == ["a1", "b1", "x", "c1", "y", "a2", "a3", "b2", "end"]


def test_stopping_drops_the_executions_not_begun_and_waits_for_the_running_one() -> None:
    ran: list[str] = []
    pool = ExecutionPool(2)
    pool.start()
    gates = [threading.Event(), threading.Event()]
    running = [submit(pool, FakeExecution(f"r{n}", f"r{n}", ran, gates[n])) for n in range(2)]
    assert all(execution.started.wait(WAIT_SECONDS) for execution in running)
    waiting = submit(pool, FakeExecution("w", "w", ran))

    def open_gates() -> None:
        for gate in gates:
            gate.set()

    threading.Timer(0.2, open_gates).start()
    pool.stop(WAIT_SECONDS)
    assert sorted(ran) == ["r0", "r1"]
    assert not waiting.started.is_set()


def test_repeats_run_one_at_a_time() -> None:
    ran: list[str] = []
    pool = ExecutionPool(2, repeats_at_once=1)
    pool.start()
    first = submit(pool, FakeExecution("a1", "a", ran))
    assert first.started.wait(WAIT_SECONDS)
    gate = threading.Event()
    repeats = [submit(pool, FakeExecution(f"a{n}", "a", ran, gate)) for n in (2, 3)]
    assert repeats[0].started.wait(WAIT_SECONDS)
    assert not repeats[1].started.wait(0.3)  # a slot is free, but one repeat runs already
    fresh = submit(pool, FakeExecution("b1", "b", ran))
    assert fresh.started.wait(WAIT_SECONDS)  # the free slot serves a first execution
    gate.set()
    assert repeats[1].started.wait(WAIT_SECONDS)
    pool.stop(WAIT_SECONDS)
    assert ran == ["a1", "b1", "a2", "a3"]
