"""The fused fast path.

A source followed by a straight run of map / filter / key_by steps (and usually a sink) compiled
into one generated function.

Same semantics as the chained closures of ``plan.steps`` (each user function's errors are
wrapped with its step name, ``SerdeUnavailable`` is never wrapped), one Python frame instead
of one per step. ``compile_task(..., fuse=False)`` builds the chained form instead; a
property test holds the two to the same outputs and errors.
"""

from __future__ import annotations

from typing import Any

from streamflow.dsl.nodes import Apply, Node, Sink, Source
from streamflow.plan.context import Entry, StepError
from streamflow.plan.wiring import Wiring
from streamflow.serde import SerdeUnavailable

FUSABLE = frozenset({"map", "filter", "key_by"})

_CALL = {"map": "v = f{i}(v)", "filter": "keep = f{i}(v)", "key_by": "k = f{i}(v)"}


def _chain(w: Wiring, source: Source) -> tuple[list[Apply], Node]:
    """The straight run of fusable steps after ``source``, and the node ending it."""
    chain: list[Apply] = []
    node: Node = source
    while len(w.children(node)) == 1:
        child = w.children(node)[0]
        if not (isinstance(child, Apply) and child.op in FUSABLE):
            break
        chain.append(child)
        node = child
    return chain, node


def fused_entry(w: Wiring, source: Source, name: str, kd: Any, vd: Any) -> Entry | None:
    """The entry of ``source`` as one function, or None when no step after it can be fused.

    ``name`` names the deserialize step, ``kd``/``vd`` are the deserializers.
    """
    chain, node = _chain(w, source)
    if not chain:
        return None
    ns: dict[str, Any] = {"StepError": StepError, "SerdeUnavailable": SerdeUnavailable,
                          "kd": kd, "vd": vd, "n_src": name}
    body = [
        "def entry(kb, vb, ts, h):",
        "    try:",
        "        k = kd(kb)",
        "        v = vd(vb)",
        "    except SerdeUnavailable:",
        "        raise",
        "    except Exception as e:",
        "        raise StepError(n_src, e, 'deserialize') from e",
    ]
    for i, step in enumerate(chain):
        ns[f"f{i}"] = step.fn
        ns[f"n{i}"] = step.name
        body += ["    try:", "        " + _CALL[step.op].format(i=i),
                 "    except Exception as e:", f"        raise StepError(n{i}, e) from e"]
        if step.op == "filter":
            body += ["    if not keep:", "        return"]
    tail = w.children(node)
    sink = tail[0] if len(tail) == 1 else None
    if isinstance(sink, Sink) and sink.topic is not None and not w.children(sink):
        ns["ks"], ns["vs"] = w.serializers_for(sink.topic)
        ns.update(emit=w.ctx.emit, topic=sink.topic, n_sink=sink.name)
        w.step(sink)  # built all the same: other paths (a merge into it) may use it
        body += ["    try:", "        kb = ks(k)", "        vb = vs(v)",
                 "    except SerdeUnavailable:", "        raise",
                 "    except Exception as e:",
                 "        raise StepError(n_sink, e, 'produce') from e",
                 "    emit(topic, kb, vb, ts, h)"]
    else:
        ns["nxt"] = w.downstream(node)
        body.append("    nxt(k, v, ts, h)")
    exec(compile("\n".join(body), f"<streamflow fused {source.name}>", "exec"), ns)
    return ns["entry"]  # type: ignore[no-any-return]
