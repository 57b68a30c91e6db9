"""Code written out inline for speed (one frame less per span or record) stays the same as
the function it copies. Each copy is marked with a comment naming its original; these
tests find every marked copy and compare it with the original's code."""

from __future__ import annotations

import ast
import inspect
import pathlib
import random
import textwrap
from typing import Any

import pytest
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanContext, TraceFlags, TraceState
from sfumato import _otel
from sfumato._decisions import Consistent, drop_result
from sfumato.plugins.botticelli import _context, metrics, spans

BOTTICELLI = pathlib.Path(spans.__file__).parent


def _marked(path: pathlib.Path, marker: str) -> list[ast.stmt]:
    """The statement each comment holding ``marker`` names: the ``try`` on its line, or
    the first statement after it (past the comment's other lines)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    starts: dict[int, ast.stmt] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            starts.setdefault(node.lineno, node)
    found = []
    for i, line in enumerate(lines, start=1):
        if marker not in line or "#" not in line:
            continue
        if line.lstrip().startswith("try:"):
            found.append(starts[i])
            continue
        n = i + 1
        while lines[n - 1].lstrip().startswith("#"):
            n += 1
        found.append(starts[n])
    return found


def _body(func: Any) -> list[ast.stmt]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef)
    body = definition.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body


def test_the_tracer_lookup_copies_match_fast_tracer() -> None:
    (original,) = _body(_context.fast_tracer)[:1]
    expected = (
        ast.unparse(original)
        .replace("(c := _cached)", "(c := _ctx._cached)")
        .replace("_refresh()[2]", "_ctx.fast_tracer()")
    )
    copies = _marked(BOTTICELLI / "spans.py", "_ctx.fast_tracer(), inline")
    assert len(copies) == 3  # narrative, act and LLM call (one _Step), parse_json
    for copy in copies:
        assert ast.unparse(copy) == expected


def test_the_context_restore_copy_matches_undo_context() -> None:
    (original,) = _body(spans._undo_context)
    copies = _marked(BOTTICELLI / "spans.py", "_undo_context, inline")
    assert len(copies) == 1
    for copy in copies:
        assert isinstance(copy, ast.Try)
        assert ast.unparse(copy).replace("_detach(token)", "detach(token)") == ast.unparse(
            original
        ).replace("_detach(token)", "detach(token)")


def test_the_metric_record_copy_matches_series_record() -> None:
    first = _body(_otel.Series.record)[0]
    assert isinstance(first, ast.If)
    expected = ast.unparse(first).replace("self.", "series.")
    copies = _marked(pathlib.Path(metrics.__file__), "Series.record's common case, inline")
    assert len(copies) == 1
    assert ast.unparse(copies[0]) == expected


@pytest.mark.parametrize("state", [None, "ot=th:8", "ot=rv:00000000000001", "vendor=x"])
def test_a_consistent_drop_under_a_tail_is_drop_result(state: str | None) -> None:
    """Consistent.decide_parent writes drop_result(ts, RECORD_ONLY, attributes) out."""
    sampler = Consistent(1 << 55, "p", record_only=True)  # keeps half
    trace_state = None if state is None else TraceState.from_header([state])
    rng = random.Random(7)
    for _ in range(200):
        trace_id = rng.getrandbits(128)
        parent = SpanContext(trace_id, 5, True, TraceFlags(1), trace_state)
        attributes = rng.choice([None, {}, {"k": "v"}])
        result = sampler.decide_parent(parent, None, trace_id, "s", None, attributes)
        if result.decision is Decision.RECORD_AND_SAMPLE:
            continue
        expected = drop_result(trace_state, Decision.RECORD_ONLY, attributes)
        assert result.decision is expected.decision
        assert dict(result.attributes or {}) == dict(expected.attributes or {})
        assert result.trace_state == expected.trace_state
