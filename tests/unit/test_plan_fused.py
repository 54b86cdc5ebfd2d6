"""The fused fast path (one generated function for a run of map / filter / key_by steps and
its sink) behaves exactly as the chained closures: same outputs, same failing step."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import streamflow as sf
from streamflow.plan.compile import StepError, TaskContext, compile_task
from streamflow.serde import SerdeContext

# (op, parameter): a step's function is derived from them; some raise on some inputs
Steps = list[tuple[str, int]]


def _fn(op: str, p: int) -> Any:
    if op == "map":
        def m(v: int) -> int:
            if v % 7 == p % 7:
                raise ValueError(f"map {p} refuses {v}")
            return v * 3 + p

        return m
    if op == "filter":
        def f(v: int) -> bool:
            if v % 11 == p % 11:
                raise KeyError(v)
            return v % 3 != p % 3

        return f

    def k(v: int) -> str:
        if v % 13 == p % 13:
            raise ZeroDivisionError(v)
        return f"k{(v + p) % 5}"

    return k


def _topology(steps: Steps, tail: str) -> sf.Topology:
    t = sf.Topology("fused")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Json())
    other = t.topic("other", key=sf.String(), value=sf.Json())
    s = t.processor("p").stream(src, name="src")
    for i, (op, p) in enumerate(steps):
        s = getattr(s, op)(_fn(op, p), name=f"s{i}-{op}")
    if tail == "sink":
        s.to(out, name="sink")
    elif tail == "two sinks":  # not fusable into the entry: handed over to a fanout
        s.to(out, name="sink")
        s.to(other, name="sink2")
    else:  # a step that is not fused follows the run
        s.flat_map(lambda v: [v, v], name="twice").to(out, name="sink")
    return t


def _run(t: sf.Topology, records: list[tuple[str | None, int]], fuse: bool
         ) -> tuple[list[Any], bool]:
    outputs: list[Any] = []

    def emit(topic: str, kb: bytes | None, vb: bytes | None, ts: int, h: Any) -> None:
        outputs.append((topic, kb, vb, ts))

    ctx = TaskContext("p", 0, emit, SerdeContext())
    entry = compile_task(t.processors["p"], ctx, fuse=fuse).entries["in"]
    for i, (key, value) in enumerate(records):
        try:
            entry(None if key is None else key.encode(), orjson.dumps(value), i, None)
        except StepError as e:
            outputs.append(("error", e.step, e.phase, type(e.cause).__name__, str(e.cause)))
    return outputs, "<streamflow fused" in entry.__code__.co_filename


_STEPS = st.lists(st.tuples(st.sampled_from(["map", "filter", "key_by"]),
                            st.integers(0, 50)), min_size=1, max_size=8)
_RECORDS = st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["a", "b"])),
                              st.integers(-1000, 1000)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_STEPS, st.sampled_from(["sink", "two sinks", "unfused step"]), _RECORDS)
def test_fused_and_chained_steps_give_the_same_outputs_and_errors(
        steps: Steps, tail: str, records: list[tuple[str | None, int]]) -> None:
    t = _topology(steps, tail)
    fused, was_fused = _run(t, records, fuse=True)
    chained, was_chained = _run(t, records, fuse=False)
    assert was_fused and not was_chained
    assert fused == chained


def test_a_bad_input_fails_in_the_deserialize_step_either_way() -> None:
    t = _topology([("map", 1)], "sink")
    for fuse in (True, False):
        ctx = TaskContext("p", 0, lambda *a: None, SerdeContext())
        entry = compile_task(t.processors["p"], ctx, fuse=fuse).entries["in"]
        try:
            entry(b"a", b"{not json", 0, None)
        except StepError as e:
            assert (e.step, e.phase) == ("src:deserialize", "deserialize")
        else:
            raise AssertionError("a bad value must fail")


def test_an_output_that_cannot_be_serialized_fails_in_the_produce_phase_either_way() -> None:
    t = sf.Topology("fused")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.String(), value=sf.Int())
    t.processor("p").stream(src, name="src").map(str, name="text").to(out, name="sink")
    for fuse in (True, False):
        ctx = TaskContext("p", 0, lambda *a: None, SerdeContext())
        entry = compile_task(t.processors["p"], ctx, fuse=fuse).entries["in"]
        try:
            entry(b"a", b"1", 0, None)
        except StepError as e:
            assert (e.step, e.phase, fuse) == ("sink", "produce", fuse)
        else:
            raise AssertionError("a str is no Int")
