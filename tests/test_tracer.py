"""sfumato's tracer behaves as the SDK's through the OpenTelemetry API: the same spans come
out of the same calls, and nothing raises into the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sfumato
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, Sampler
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from sfumato._tracer import SfumatoTracer, SfumatoTracerProvider

STACK = "exception.stacktrace"


def _pair(
    limits: SpanLimits | None = None, sampler: Sampler = ALWAYS_ON
) -> list[tuple[TracerProvider, InMemorySpanExporter]]:
    out = []
    for cls in (TracerProvider, SfumatoTracerProvider):
        exporter = InMemorySpanExporter()
        provider = cls(sampler=sampler, span_limits=limits, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        out.append((provider, exporter))
    return out


def _shape(span: ReadableSpan, ids: dict[int, int]) -> dict[str, Any]:
    """What an exporter sees, with ids replaced by their order of appearance."""

    def local(span_id: int | None) -> int | None:
        return None if span_id is None else ids.setdefault(span_id, len(ids))

    return {
        "name": span.name,
        "kind": span.kind,
        "parent": local(span.parent.span_id) if span.parent else None,
        "id": local(span.context.span_id),
        "sampled": span.context.trace_flags.sampled,
        "attributes": dict(span.attributes),
        "dropped_attributes": span.dropped_attributes,
        # The stack trace lists the tracer's own frames, which differ: compare the rest.
        "events": [
            (e.name, {k: v for k, v in (e.attributes or {}).items() if k != STACK})
            for e in span.events
        ],
        "dropped_events": span.dropped_events,
        "links": [(dict(link.attributes or {})) for link in span.links],
        "dropped_links": span.dropped_links,
        "status": (span.status.status_code, span.status.description),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "timed": span.start_time is not None and span.end_time >= span.start_time,
    }


def _same_spans(script: Callable[[trace.Tracer], None], **kwargs: Any) -> list[dict[str, Any]]:
    shapes = []
    for provider, exporter in _pair(**kwargs):
        tracer = provider.get_tracer("test-scope")
        with contextlib.suppress(ValueError):
            script(tracer)
        ids: dict[int, int] = {}
        shapes.append([_shape(s, ids) for s in exporter.get_finished_spans()])
    sdk, ours = shapes
    assert ours == sdk
    return ours


def test_provider_hands_out_sfumato_tracers() -> None:
    provider = SfumatoTracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer("x")
    assert isinstance(tracer, SfumatoTracer)
    assert provider.get_tracer("x") is tracer


def test_nested_spans_attributes_kinds_and_status() -> None:
    link_ctx = SpanContext(5, 6, is_remote=True, trace_flags=TraceFlags(1))

    def script(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span(
            "root", attributes={"a": 1, "b": "x", "c": True, "f": 1.5}, kind=SpanKind.SERVER
        ) as root:
            root.set_attribute("late", "v")
            root.set_attributes({"x": [1, 2], "y": ("a", "b")})
            root.set_attribute("b", "moved")
            with tracer.start_as_current_span("child", links=[Link(link_ctx, {"l": 1})]) as c:
                c.add_event("hello", {"k": "v"})
                c.add_link(link_ctx, {"added": True})
                c.set_status(Status(StatusCode.OK))
                assert trace.get_current_span() is c
            assert trace.get_current_span() is root
            span = tracer.start_span("manual", attributes={"bad": object(), "": 1, "n": None})
            span.set_status(StatusCode.ERROR, "why")
            span.end()
        assert not trace.get_current_span().get_span_context().is_valid

    shapes = _same_spans(script)
    assert [s["name"] for s in shapes] == ["child", "manual", "root"]
    assert shapes[2]["attributes"]["b"] == "moved"
    assert shapes[0]["parent"] == shapes[2]["id"] == shapes[1]["parent"]


def test_exceptions_are_recorded_and_propagate() -> None:
    def script(tracer: trace.Tracer) -> None:
        with (
            tracer.start_as_current_span("outer"),
            tracer.start_as_current_span(
                "quiet", record_exception=False, set_status_on_exception=False
            ),
        ):
            raise ValueError("boom")

    shapes = _same_spans(script)
    quiet, outer = shapes
    assert quiet["events"] == [] and quiet["status"][0] is StatusCode.UNSET
    assert outer["events"][0][0] == "exception"
    assert outer["status"] == (StatusCode.ERROR, "ValueError: boom")
    for provider, exporter in _pair():
        with (
            pytest.raises(ValueError, match="boom"),
            provider.get_tracer("t").start_as_current_span("s"),
        ):
            raise ValueError("boom")
        assert "ValueError: boom" in exporter.get_finished_spans()[0].events[0].attributes[STACK]


def test_limits_are_applied_as_the_sdk_applies_them() -> None:
    limits = SpanLimits(max_span_attributes=2, max_attribute_length=3, max_events=1, max_links=1)
    link_ctx = SpanContext(5, 6, is_remote=True, trace_flags=TraceFlags(1))

    def script(tracer: trace.Tracer) -> None:
        span = tracer.start_span(
            "s", attributes={"a": "long value", "b": 2, "c": 3}, links=[Link(link_ctx)] * 2
        )
        span.set_attribute("d", "abcdef")
        span.add_event("e1")
        span.add_event("e2")
        span.end()
        small = tracer.start_span("t", attributes={"a": "ok"})
        small.set_attribute("b", "toolong")
        small.set_attribute("c", "x")
        small.end()

    shapes = _same_spans(script, limits=limits)
    assert shapes[0]["dropped_attributes"] >= 1
    assert shapes[0]["dropped_events"] == 1 and shapes[0]["dropped_links"] == 1
    assert shapes[1]["attributes"] == {"b": "too", "c": "x"}


def test_set_attributes_as_the_sdk_sets_them() -> None:
    limits = SpanLimits(max_span_attributes=4, max_attribute_length=5)

    def script(tracer: trace.Tracer) -> None:
        span = tracer.start_span("s", attributes={"a": 1})
        span.set_attributes({"b": 2, "c": "short"})
        span.set_attributes({"a": 3, "d": True})  # a re-set key moves to the end
        span.set_attributes({"e": "far too long", "f": [1, 2]})  # cleaned; the oldest go
        span.end()
        span.set_attributes({"g": 1})  # ended: ignored
        other = tracer.start_span("t")
        other.set_attributes({"x": "truncated value", "y": ("a", "b"), "": 1})
        other.end()

    shapes = _same_spans(script, limits=limits)
    assert shapes[0]["attributes"] == {"a": 3, "d": True, "e": "far t", "f": (1, 2)}
    assert list(shapes[0]["attributes"]) == ["a", "d", "e", "f"]
    assert shapes[0]["dropped_attributes"] == 2
    assert shapes[1]["attributes"] == {"x": "trunc", "y": ("a", "b")}


def test_ended_span_stays_ended() -> None:
    def script(tracer: trace.Tracer) -> None:
        span = tracer.start_span("once")
        span.end()
        span.end()
        span.set_attribute("after", 1)
        span.add_event("after")
        span.set_status(StatusCode.ERROR)
        span.update_name("renamed")
        assert not span.is_recording()

    shapes = _same_spans(script)
    assert len(shapes) == 1 and shapes[0]["attributes"] == {} and shapes[0]["name"] == "once"


def test_sampler_decisions_and_remote_parents() -> None:
    remote = trace.set_span_in_context(
        trace.NonRecordingSpan(SpanContext(7, 9, is_remote=True, trace_flags=TraceFlags(1)))
    )

    def script(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("continued", context=remote) as span:
            assert span.get_span_context().trace_id == 7
        with tracer.start_as_current_span("dropped") as off:
            assert not off.is_recording()

    class OnlyContinued(Sampler):
        def should_sample(self, parent_context: Any, trace_id: int, name: str, *a: Any) -> Any:
            sampler = ALWAYS_ON if name == "continued" else ALWAYS_OFF
            return sampler.should_sample(parent_context, trace_id, name, *a)

        def get_description(self) -> str:
            return "only-continued"

    shapes = _same_spans(script, sampler=OnlyContinued())
    assert [s["name"] for s in shapes] == ["continued"]
    assert shapes[0]["parent"] is not None


def test_record_only_spans_are_recorded_not_sampled() -> None:
    class RecordOnly(Sampler):
        def should_sample(self, *a: Any, **k: Any) -> Any:
            from opentelemetry.sdk.trace.sampling import SamplingResult

            return SamplingResult(Decision.RECORD_ONLY, {"kept": "no"})

        def get_description(self) -> str:
            return "record-only"

    seen: list[ReadableSpan] = []

    class Collect(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            seen.append(span)

    provider = SfumatoTracerProvider(sampler=RecordOnly(), shutdown_on_exit=False)
    provider.add_span_processor(Collect())
    with provider.get_tracer("t").start_as_current_span("r") as span:
        assert span.is_recording()
    assert len(seen) == 1
    assert not seen[0].context.trace_flags.sampled
    assert dict(seen[0].attributes) == {"kept": "no"}


def test_decorators_sync_and_async() -> None:
    for provider, exporter in _pair():
        tracer = provider.get_tracer("t")

        @tracer.start_as_current_span("sync")
        def work(x: int) -> int:
            return x + trace.get_current_span().get_span_context().span_id * 0

        @tracer.start_as_current_span("async")
        async def awork() -> str:
            await asyncio.sleep(0)
            return trace.get_current_span().name  # type: ignore[attr-defined, no-any-return]

        assert work(1) == 1 and work(2) == 2
        assert asyncio.run(awork()) == "async"
        names = [s.name for s in exporter.get_finished_spans()]
        assert names == ["sync", "sync", "async"]


def test_the_sdk_paths_tracer_decorates_sync_and_async_functions() -> None:
    """The SDK's path (its tracers wrapped by sfumato): a decorated coroutine function runs
    inside its span, a fresh one per call, as on the fast path."""
    from sfumato._tracer import SdkTracerProvider

    exporter = InMemorySpanExporter()
    provider = SdkTracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")

    @tracer.start_as_current_span("sync")
    def work(x: int) -> int:
        return x

    @tracer.start_as_current_span("async")
    async def awork() -> str:
        await asyncio.sleep(0)
        return trace.get_current_span().name  # type: ignore[attr-defined, no-any-return]

    assert work(1) == 1 and work(2) == 2
    assert asyncio.run(awork()) == "async"
    assert asyncio.run(awork()) == "async"
    assert [s.name for s in exporter.get_finished_spans()] == ["sync", "sync", "async", "async"]
    provider.shutdown()


def test_failing_processors_and_samplers_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    class Broken(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            raise RuntimeError("start")

        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("end")

    class After(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            seen.append(span.name)

    provider = SfumatoTracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(Broken())
    provider.add_span_processor(After())
    with caplog.at_level(logging.WARNING, logger="sfumato"):
        with provider.get_tracer("t").start_as_current_span("fine"):
            pass
        with provider.get_tracer("t").start_as_current_span("again"):
            pass
    assert seen == ["fine", "again"]
    assert sum("span processor raised" in r.getMessage() for r in caplog.records) == 1

    class Raising(Sampler):
        def should_sample(self, *a: Any, **k: Any) -> Any:
            raise RuntimeError("sampler")

        def get_description(self) -> str:
            return "raising"

    bad = SfumatoTracerProvider(sampler=Raising(), shutdown_on_exit=False)
    with bad.get_tracer("t").start_as_current_span("x") as span:
        assert not span.is_recording()


def test_processors_added_later_see_new_spans() -> None:
    provider = SfumatoTracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer("t")
    tracer.start_span("before").end()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer.start_span("after").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["after"]


@pytest.mark.fast_path
def test_configure_installs_sfumato_tracer_for_the_api() -> None:
    with sfumato.configure(None, backend="none", exporters=[{"type": "memory"}]) as handle:
        tracer = trace.get_tracer("app")
        assert isinstance(tracer, SfumatoTracer)
        token = context_api.attach(context_api.set_value("k", "v"))
        try:
            with tracer.start_as_current_span("api", attributes={"a": 1}):
                assert context_api.get_value("k") == "v"
        finally:
            context_api.detach(token)
        spans = handle.exporter("memory").get_finished_spans()
        assert [s.name for s in spans] == ["api"]
        assert spans[0].resource.attributes["service.name"] == handle.settings.service_name


def test_a_processor_added_after_spans_ran_sees_the_next_spans() -> None:
    first: list[str] = []
    later: list[str] = []

    class Into(SpanProcessor):
        def __init__(self, into: list[str]) -> None:
            self.into = into

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            self.into.append("start " + span.name)

        def on_end(self, span: ReadableSpan) -> None:
            self.into.append("end " + span.name)

    provider = SfumatoTracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(Into(first))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("before"):
        pass
    provider.add_span_processor(Into(later))  # the tracer's processor lists are made again
    with tracer.start_as_current_span("after"):
        pass
    assert first == ["start before", "end before", "start after", "end after"]
    assert later == ["start after", "end after"]


def test_a_sfumato_sampler_s_spans_carry_what_the_sdk_would_give_them() -> None:
    """sfumato's samplers let the tracer check only the caller's attributes and keep the
    decision's dict (plain_attributes); with a length limit, or values to clean, the spans
    still come out as the SDK's tracer makes them with the same sampler."""
    from sfumato.samplers.probability import AlwaysOnSampler, ParentBasedSampler, RatioSampler

    def script(tracer: trace.Tracer) -> None:
        given = {"narrative.type": "curation", "tags": ["a", "b"], "n": 3}
        with tracer.start_as_current_span("root", attributes=given):
            given["n"] = 4  # the caller's dict changes after the start: the span keeps 3
            with tracer.start_as_current_span("child", attributes={"k": "a long value"}):
                pass
            tracer.start_span("plain", attributes={"k": "v"}).end()

    for sampler in (AlwaysOnSampler(), ParentBasedSampler(RatioSampler(1.0))):
        for limits in (None, SpanLimits(max_attribute_length=4)):
            shapes = _same_spans(script, limits=limits, sampler=sampler)
            assert shapes[2]["attributes"]["n"] == 3
            assert shapes[2]["attributes"]["tags"] == ("a", "b")
            if limits is not None:  # spans in end order: child, plain, root
                assert shapes[0]["attributes"]["k"] == "a lo"
                assert shapes[1]["attributes"]["k"] == "v"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


def test_a_bad_value_given_to_a_span_never_raises_into_the_application(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[Callable[[Any], object]] = [
        lambda span: span.set_attribute("a", _Unprintable()),
        lambda span: span.set_attributes({"b": _Unprintable()}),
        lambda span: span.add_event("e", {"c": _Unprintable()}),
        lambda span: span.record_exception("not an exception"),  # type: ignore[arg-type]
    ]
    with sfumato.configure(backend="none", logs={"enabled": False}) as telemetry:
        tracer = trace.get_tracer("bad-values")
        with caplog.at_level(logging.WARNING, logger="sfumato"):
            for call in calls * 2:
                with tracer.start_as_current_span("s") as span:
                    call(span)  # must not raise
                    span.set_attribute("after", 1)  # the span still works
        assert telemetry.stats()["spans.api_errors"] == len(calls) * 2
    warned = [r.getMessage() for r in caplog.records if "api_errors" in r.getMessage()]
    assert len(warned) == len(calls), warned  # once per kind of call


def test_malformed_span_arguments_are_mended_or_dropped_at_the_call() -> None:
    """Arguments of the wrong type are caught on the caller's thread (counted, never
    raised): the span still exports and encodes, instead of failing its whole batch later."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    with sfumato.configure(
        None, backend="none", logs={"enabled": False}, exporters=[{"type": "memory"}]
    ) as telemetry:
        tracer = trace.get_tracer("malformed")
        tracer.start_span("kind-as-text", kind="server").end()  # type: ignore[arg-type]
        tracer.start_span("kind-unknown", kind="sideways").end()  # type: ignore[arg-type]
        tracer.start_span("start-as-text", start_time="x").end()  # type: ignore[arg-type]
        tracer.start_span("start-as-float", start_time=1.7e18).end()  # type: ignore[arg-type]
        tracer.start_span("end-as-text").end(end_time="x")  # type: ignore[arg-type]
        span = tracer.start_span("event-time-as-text")
        span.add_event("e", timestamp="x")  # type: ignore[arg-type]
        span.end()
        tracer.start_span("start-infinite", start_time=float("inf")).end()  # type: ignore[arg-type]
        tracer.start_span("start-negative", start_time=-5).end()
        tracer.start_span("end-too-late").end(end_time=2**70)
        tracer.start_span("end-huge-float").end(end_time=1e30)  # type: ignore[arg-type]
        tracer.start_span(12345).end()  # type: ignore[arg-type]
        renamed = tracer.start_span("to-rename")
        renamed.update_name(("not", "text"))  # type: ignore[arg-type]
        renamed.add_event(b"bytes-name")  # type: ignore[arg-type]
        renamed.end()
        spans = {s.name: s for s in telemetry.exporter("memory").get_finished_spans()}
        errors = telemetry.stats()["spans.api_errors"]
    assert len(spans) == 12
    assert spans["kind-as-text"].kind is SpanKind.SERVER
    assert spans["kind-unknown"].kind is SpanKind.INTERNAL
    assert spans["start-as-float"].start_time == int(1.7e18)
    for s in spans.values():
        assert type(s.start_time) is int and type(s.end_time) is int, s.name
        assert all(type(e.timestamp) is int for e in s.events), s.name
    encode_spans(list(spans.values())).SerializeToString()  # the batch encodes
    # unknown kind; text start, end and event time; infinite and negative start; two late ends
    assert errors == 8
    assert {"12345", "('not', 'text')"} <= set(spans)
