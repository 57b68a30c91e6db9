"""OpenTelemetry's declarative configuration (file format 1.x) and sfumato's ``[telemetry]``
table, each way: ``sfumato export --format otel-yaml`` writes the equivalent file for what
has an equivalent and lists what has none; ``sfumato import FILE`` reads such a file into a
``[telemetry]`` table, listing what it leaves out.

What maps: the resource (service name, version, environment, ``[telemetry.resource]``),
the propagators, the batch processors and their OTLP (gRPC, HTTP) and console exporters
per signal, the metric views, reader interval and exemplar filter, the Prometheus pull
exporter, and the samplers ``always_on``, ``always_off``, ``ratio`` (as
``trace_id_ratio_based``), ``parent_based``, and head ``rules`` that only test one start
attribute each and keep at a rate (as the composite ``rule_based`` sampler under
``parent_threshold``). Header values are never written: a header that came from
``${VAR}`` is written as ``${VAR}``, any other as ``${OTEL_HEADER_<NAME>}``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from typing import Any

from sfumato import hookimpl
from sfumato._loading import LoadedConfig, load_config

from .otlp_endpoints import DEFAULT_GRPC, DEFAULT_HTTP

__all__ = ["FILE_FORMAT", "DeclarativeCommands", "from_otel", "to_otel"]

FILE_FORMAT = "1.1"
_SIGNAL_PATH = re.compile(r"/v1/(traces|metrics|logs)/?$")
_PROVIDERS = {"traces": "tracer_provider", "metrics": "meter_provider", "logs": "logger_provider"}


# -- sfumato -> declarative ----------------------------------------------------------------------


def to_otel(loaded: LoadedConfig) -> tuple[dict[str, Any], list[str]]:
    """The declarative document for ``loaded``, and what has no equivalent in it."""
    settings, plan = loaded.settings, loaded.plan
    missing: list[str] = []
    doc: dict[str, Any] = {"file_format": FILE_FORMAT}
    if not settings.enabled or plan is None:
        doc["disabled"] = True
        return doc, missing
    attributes: list[dict[str, Any]] = [{"name": "service.name", "value": settings.service_name}]
    if settings.service_version:
        attributes.append({"name": "service.version", "value": settings.service_version})
    if settings.environment:
        attributes.append({"name": "deployment.environment.name", "value": settings.environment})
    attributes += [{"name": k, "value": v} for k, v in settings.resource.items()]
    doc["resource"] = {"attributes": attributes}
    doc["propagator"] = {"composite": [{name: None} for name in settings.propagators]}
    processors: dict[str, list[Any]] = {"traces": [], "metrics": [], "logs": []}
    for node in plan.exporters:
        for signal in sorted(node.signals):
            if signal == "metrics" and not settings.metrics.enabled:
                continue
            if signal == "logs" and not settings.logs.enabled:
                continue
            made = _exporter(node, signal, settings)
            if made is None:
                missing.append(f"exporter {node.label!r} ({signal}): no equivalent")
                continue
            processors[signal].append(made)
    # A provider needs one processor (reader) at least: one without is left out, and said.
    sampler, why = _sampler(plan.sampler)
    if sampler is None:
        missing.append(f"sampler: {why} (the file's SDK would take its default, parent_based)")
    if processors["traces"]:
        tracer: dict[str, Any] = {"processors": processors["traces"]}
        if sampler is not None:
            tracer["sampler"] = sampler
        doc["tracer_provider"] = tracer
    else:
        missing.append("tracer_provider: no exporter of spans has an equivalent")
    if settings.metrics.enabled and processors["metrics"]:
        meter: dict[str, Any] = {"readers": processors["metrics"]}
        views = [_view(name, view) for name, view in settings.metrics.views.items()]
        if views:
            meter["views"] = views
        meter["exemplar_filter"] = settings.metrics.exemplars
        doc["meter_provider"] = meter
    elif settings.metrics.enabled:
        missing.append("meter_provider: no exporter of metrics has an equivalent")
    if settings.logs.enabled and processors["logs"]:
        doc["logger_provider"] = {"processors": processors["logs"]}
    elif settings.logs.enabled:
        missing.append("logger_provider: no exporter of log records has an equivalent")
    for key, what in _unmapped_settings(settings):
        missing.append(f"{key}: {what}")
    return doc, missing


def _unmapped_settings(settings: Any) -> list[tuple[str, str]]:
    out = []
    if settings.instrumentations:
        out.append(("instrumentations", "the 'instrumentation/development' section differs"))
    if settings.scrubbing.enabled:
        out.append(("scrubbing", "no equivalent: the file's SDK would export secrets as they are"))
    if settings.export_workers != 1:
        out.append(("export_workers", "no equivalent (one export call at a time)"))
    if settings.on_full == "block":
        out.append(("on_full", "no equivalent (a full queue drops)"))
    return out


def _header_values(
    headers: Mapping[str, Any], templates: Mapping[str, str]
) -> list[dict[str, str]]:
    """Each header as a ``${VAR}`` placeholder: the one it was written with, or one named
    for it. A header's value is never written."""
    out = []
    for name in headers:
        template = templates.get(f"headers.{name}")
        if template is None or "${" not in template:
            variable = "OTEL_HEADER_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
            template = f"${{{variable}}}"
        out.append({"name": name, "value": template})
    return out


def _exporter(node: Any, signal: str, settings: Any) -> dict[str, Any] | None:
    """The processor (traces, logs) or reader (metrics) of one exporter, or None."""
    if node.name in ("otlp-grpc", "otlp-http"):
        options = node.options
        grpc = node.name == "otlp-grpc"
        base = (
            options.endpoint or settings.otlp_endpoint or (DEFAULT_GRPC if grpc else DEFAULT_HTTP)
        )
        body: dict[str, Any] = {"endpoint": base if grpc else _signal_url(base, signal)}
        # The exporter's own headers over the backend's, as the exporter sends them.
        headers = _header_values({**settings.headers, **options.headers}, settings._templates)
        if headers:
            body["headers"] = headers
        compression = options.compression or settings.compression
        if compression != "none":
            body["compression"] = compression
        body["timeout"] = options.timeout_ms or settings.export_timeout_ms
        insecure = options.insecure if options.insecure is not None else settings.insecure
        if grpc and insecure:
            body["tls"] = {"insecure": True}
        exporter = {"otlp_grpc" if grpc else "otlp_http": body}
    elif node.name == "console":
        exporter = {"console": {}}
    elif node.name == "prometheus" and signal == "metrics":
        options = node.options
        return {
            "pull": {
                "exporter": {
                    "prometheus/development": {
                        "host": getattr(options, "host", "localhost"),
                        "port": getattr(options, "port", 9464),
                    }
                }
            }
        }
    else:
        return None
    if signal == "metrics":
        return {
            "periodic": {
                "interval": settings.metrics.export_interval_ms,
                "timeout": settings.export_timeout_ms,
                "exporter": exporter,
            }
        }
    return {
        "batch": {
            "schedule_delay": settings.batch_timeout_ms,
            "export_timeout": settings.export_timeout_ms,
            "max_queue_size": settings.max_queue_size,
            "max_export_batch_size": settings.batch_size,
            "exporter": exporter,
        }
    }


def _signal_url(base: str, signal: str) -> str:
    return base.rstrip("/") + f"/v1/{signal}"


def _view(name: str, view: Any) -> dict[str, Any]:
    stream: dict[str, Any] = {}
    if view.name:
        stream["name"] = view.name
    if view.description:
        stream["description"] = view.description
    if view.buckets is not None:
        stream["aggregation"] = {"explicit_bucket_histogram": {"boundaries": list(view.buckets)}}
    return {"selector": {"instrument_name": name}, "stream": stream}


def _sampler(node: Any) -> tuple[dict[str, Any] | None, str]:
    """The declarative sampler for a sfumato sampler node, or None and why not."""
    name, options = node.name, node.options
    if name in ("always_on", "always_off"):
        return {name: None}, ""
    if name == "ratio":
        return {"trace_id_ratio_based": {"ratio": options.rate}}, ""
    if name == "parent_based":
        children = {spec_key: child for spec_key, child in _children(node)}
        out: dict[str, Any] = {}
        for key, child in children.items():
            made, why = _sampler(child)
            if made is None:
                return None, f"parent_based.{key}: {why}"
            out[key] = made
        return {"parent_based": out}, ""
    if name == "rules":
        return _rules(node)
    return None, f"{name!r} has no equivalent"


def _children(node: Any) -> list[tuple[str, Any]]:
    """(option key, child node) of a node's nested samplers, in option order."""
    keys = [k for k, v in node.options if getattr(v, "type", None) is not None]
    return list(zip(keys, node.children, strict=False))


def _rules(node: Any) -> tuple[dict[str, Any] | None, str]:
    options = node.options
    if options.span_rules:
        return None, "span rules have no equivalent"
    rules = []
    for rule in options.rules:
        if rule.span or rule.service or rule.resource or rule.max_per_second:
            return None, f"rule {rule.name!r} tests more than start attributes, or is capped"
        if len(rule.attributes) > 1:
            return None, f"rule {rule.name!r} tests more than one attribute"
        made: dict[str, Any] = {"sampler": _composable(rule.sample)}
        for key, pattern in rule.attributes.items():
            made["attribute_patterns"] = {"key": key, "included": [pattern]}
        rules.append(made)
    otherwise = node.children[-1] if node.children else None
    if otherwise is not None:
        if otherwise.name == "ratio":
            rules.append({"sampler": _composable(otherwise.options.rate)})
        elif otherwise.name in ("always_on", "always_off"):
            rules.append({"sampler": {otherwise.name: None}})
        else:
            return None, f"rules' otherwise {otherwise.name!r} has no equivalent"
    return {
        "composite/development": {"parent_threshold": {"root": {"rule_based": {"rules": rules}}}}
    }, ""


def _composable(rate: float) -> dict[str, Any]:
    if rate >= 1:
        return {"always_on": None}
    if rate <= 0:
        return {"always_off": None}
    return {"probability": {"ratio": rate}}


# -- declarative -> sfumato ----------------------------------------------------------------------


def from_otel(doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ``[telemetry]`` table for a declarative document, and what it leaves out."""
    missing: list[str] = []
    table: dict[str, Any] = {}
    fmt = str(doc.get("file_format", ""))
    if not fmt.startswith("1."):
        missing.append(f"file_format {fmt!r}: read as 1.x")
    if doc.get("disabled"):
        table["enabled"] = False
    for key in doc:
        if key not in (
            "file_format",
            "disabled",
            "resource",
            "propagator",
            "tracer_provider",
            "meter_provider",
            "logger_provider",
        ):
            missing.append(f"{key}: no equivalent")
    _resource_in(doc.get("resource") or {}, table, missing)
    _propagators_in(doc.get("propagator") or {}, table, missing)
    exporters: list[dict[str, Any]] = []
    otlp: dict[str, Any] | None = None
    signals_seen: dict[str, list[str]] = {"traces": [], "metrics": [], "logs": []}
    for signal, provider_key in _PROVIDERS.items():
        provider = doc.get(provider_key)
        if provider is None:
            if signal != "traces":
                table.setdefault(signal, {})["enabled"] = False
            continue
        items = provider.get("readers" if signal == "metrics" else "processors") or []
        for item in items:
            found = _processor_in(item, signal, table, missing)
            if found is None:
                continue
            kind, body = found
            signals_seen[signal].append(kind)
            if kind in ("otlp_grpc", "otlp_http"):
                endpoint = _SIGNAL_PATH.sub("", str(body.get("endpoint") or "")) or None
                this = {
                    "protocol": "grpc" if kind == "otlp_grpc" else "http/protobuf",
                    "endpoint": endpoint,
                }
                if otlp is None:
                    otlp = this
                    _otlp_settings(body, table, missing)
                elif this != otlp:
                    missing.append(
                        f"{provider_key}: a second OTLP endpoint ({endpoint}): sfumato sends "
                        "every signal to one"
                    )
            elif kind == "console" and signal == "traces":
                table["export_console"] = True
            elif kind == "prometheus":
                exporters.append({"type": "prometheus", "signals": ["metrics"], **body})
        if signal == "traces":
            sampler = provider.get("sampler")
            if sampler is not None:
                made = _sampler_in(sampler, missing)
                if made is not None:
                    table["sampler"] = made
        if signal == "metrics":
            _metrics_in(provider, table, missing)
        if provider.get("limits"):
            missing.append(f"{provider_key}.limits: no equivalent")
    if otlp is not None:
        table["backend"] = "otlp"
        if otlp["endpoint"]:
            table["otlp_endpoint"] = otlp["endpoint"]
        table["protocol"] = otlp["protocol"]
        carried = {
            s for s, kinds in signals_seen.items() if any(k.startswith("otlp") for k in kinds)
        }
        for signal in ("metrics", "logs"):
            if signal not in carried and table.get(signal, {}).get("enabled") is not False:
                table.setdefault(signal, {})["enabled"] = False
    else:
        table["backend"] = "none"
    if exporters:
        table["exporters"] = exporters
    return table, missing


def _resource_in(resource: Mapping[str, Any], table: dict[str, Any], missing: list[str]) -> None:
    pairs = {str(a.get("name")): a.get("value") for a in resource.get("attributes") or []}
    text = resource.get("attributes_list")
    if isinstance(text, str) and "${" not in text:
        for part in text.split(","):
            if "=" in part:
                k, _, v = part.partition("=")
                pairs.setdefault(k.strip(), v.strip())
    elif text:
        missing.append(
            f"resource.attributes_list {text!r}: sfumato reads OTEL_RESOURCE_ATTRIBUTES itself"
        )
    for key in ("detection/development", "schema_url"):
        if resource.get(key):
            missing.append(f"resource.{key}: no equivalent")
    for key, value in pairs.items():
        if key == "service.name":
            table["service_name"] = value
        elif key == "service.version":
            table["service_version"] = value
        elif key in ("deployment.environment.name", "deployment.environment"):
            table["environment"] = value
        elif isinstance(value, (str, int, float, bool)):
            table.setdefault("resource", {})[key] = value
        else:
            missing.append(f"resource attribute {key!r}: only single values map")


def _propagators_in(
    propagator: Mapping[str, Any], table: dict[str, Any], missing: list[str]
) -> None:
    names = [
        next(iter(p)) for p in propagator.get("composite") or [] if isinstance(p, Mapping) and p
    ]
    text = propagator.get("composite_list")
    if isinstance(text, str):
        names += [n.strip() for n in text.split(",") if n.strip()]
    if not names and not propagator:
        return
    kept = [n for n in dict.fromkeys(names) if n in ("tracecontext", "baggage")]
    for n in names:
        if n not in ("tracecontext", "baggage"):
            missing.append(f"propagator {n!r}: sfumato carries tracecontext and baggage only")
    table["propagators"] = kept


def _processor_in(
    item: Mapping[str, Any], signal: str, table: dict[str, Any], missing: list[str]
) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(item, Mapping) or not item:
        return None
    kind, body = next(iter(item.items()))
    body = body or {}
    if signal == "metrics" and kind == "pull":
        exporter = (body.get("exporter") or {}).get("prometheus/development")
        if exporter is None:
            missing.append("meter_provider pull reader: only prometheus/development maps")
            return None
        return "prometheus", {
            k: v for k, v in exporter.items() if k in ("host", "port") and v is not None
        }
    if kind not in ("batch", "simple", "periodic"):
        missing.append(f"{_PROVIDERS[signal]} {kind!r}: no equivalent")
        return None
    if kind == "batch":
        for src, dst in (
            ("max_export_batch_size", "batch_size"),
            ("schedule_delay", "batch_timeout_ms"),
            ("max_queue_size", "max_queue_size"),
            ("export_timeout", "export_timeout_ms"),
        ):
            if body.get(src) is not None:
                table.setdefault(dst, body[src])
    if kind == "periodic" and body.get("interval") is not None:
        table.setdefault("metrics", {})["export_interval_ms"] = body["interval"]
    exporter = body.get("exporter") or {}
    if not exporter:
        return None
    name, options = next(iter(exporter.items()))
    if name not in ("otlp_grpc", "otlp_http", "console"):
        missing.append(f"{_PROVIDERS[signal]} exporter {name!r}: no equivalent")
        return None
    return name, options or {}


def _otlp_settings(body: Mapping[str, Any], table: dict[str, Any], missing: list[str]) -> None:
    for key in sorted(set(body) - {"endpoint", "headers", "compression", "timeout", "tls"}):
        if body[key] is not None:
            missing.append(
                f"OTLP exporter {key}: no equivalent (sfumato reads OTEL_EXPORTER_OTLP_* too)"
            )
    tls = body.get("tls") or {}
    for key in sorted(set(tls) - {"insecure"}):
        missing.append(f"OTLP exporter tls.{key}: set certificate_file on the exporter instead")
    headers = {str(h["name"]): str(h.get("value") or "") for h in body.get("headers") or []}
    if headers:
        table["headers"] = headers
    if body.get("compression") in ("gzip", "none"):
        table["compression"] = body["compression"]
    if body.get("timeout") is not None:
        table.setdefault("export_timeout_ms", body["timeout"])
    if (body.get("tls") or {}).get("insecure"):
        table["insecure"] = True


def _metrics_in(provider: Mapping[str, Any], table: dict[str, Any], missing: list[str]) -> None:
    metrics = table.setdefault("metrics", {})
    if provider.get("exemplar_filter") in ("always_on", "always_off", "trace_based"):
        metrics["exemplars"] = provider["exemplar_filter"]
    for view in provider.get("views") or []:
        selector, stream = view.get("selector") or {}, view.get("stream") or {}
        name = selector.get("instrument_name")
        if not name or set(selector) - {"instrument_name"}:
            missing.append(f"view {selector}: only an instrument_name selector maps")
            continue
        made: dict[str, Any] = {}
        if stream.get("name"):
            made["name"] = stream["name"]
        if stream.get("description"):
            made["description"] = stream["description"]
        aggregation = stream.get("aggregation") or {}
        histogram = aggregation.get("explicit_bucket_histogram")
        if histogram and histogram.get("boundaries") is not None:
            made["buckets"] = list(histogram["boundaries"])
        elif aggregation:
            missing.append(
                f"view {name!r}: aggregation {next(iter(aggregation))!r} has no equivalent"
            )
        if set(stream) - {"name", "description", "aggregation"}:
            missing.append(f"view {name!r}: only name, description and explicit buckets map")
        metrics.setdefault("views", {})[name] = made


def _sampler_in(sampler: Mapping[str, Any], missing: list[str]) -> dict[str, Any] | None:
    if not isinstance(sampler, Mapping) or not sampler:
        return None
    name, body = next(iter(sampler.items()))
    body = body or {}
    if name in ("always_on", "always_off"):
        return {"type": name}
    if name in ("trace_id_ratio_based", "probability/development"):
        return {"type": "ratio", "rate": float(body.get("ratio", 1.0))}
    if name == "parent_based":
        out: dict[str, Any] = {"type": "parent_based"}
        for key in (
            "root",
            "remote_parent_sampled",
            "remote_parent_not_sampled",
            "local_parent_sampled",
            "local_parent_not_sampled",
        ):
            if body.get(key) is not None:
                child = _sampler_in(body[key], missing)
                if child is None:
                    return None
                out[key] = child
        out.setdefault("root", {"type": "always_on"})
        return out
    if name == "composite/development":
        return _composite_in(body, missing)
    missing.append(f"sampler {name!r}: no equivalent; left to sfumato's default")
    return None


def _composite_in(body: Mapping[str, Any], missing: list[str]) -> dict[str, Any] | None:
    inner = body
    if "parent_threshold" in inner:
        inner = (inner["parent_threshold"] or {}).get("root") or {}
    based = inner.get("rule_based") if isinstance(inner, Mapping) else None
    if based is None:
        missing.append("composite sampler: only rule_based (under parent_threshold) maps")
        return None
    rules: list[dict[str, Any]] = []
    otherwise: dict[str, Any] = {"type": "always_on"}
    for i, rule in enumerate(based.get("rules") or []):
        rate = _composable_rate(rule.get("sampler") or {})
        if rate is None:
            missing.append(f"rule_based rule {i}: only always_on, always_off and probability map")
            return None
        tests = {k for k in rule if k != "sampler"}
        if not tests:
            otherwise = (
                {"type": "ratio", "rate": rate}
                if 0 < rate < 1
                else {"type": "always_on" if rate >= 1 else "always_off"}
            )
            break
        if tests - {"attribute_patterns", "attribute_values"} or len(tests) > 1:
            missing.append(f"rule_based rule {i}: only one attribute test maps")
            return None
        made: dict[str, Any] = {"name": f"rule-{i + 1}", "sample": rate}
        if "attribute_patterns" in rule:
            patterns = rule["attribute_patterns"]
            included = patterns.get("included") or []
            if len(included) != 1 or patterns.get("excluded"):
                missing.append(f"rule_based rule {i}: one included pattern maps")
                return None
            made["attributes"] = {patterns["key"]: included[0]}
        else:
            values = rule["attribute_values"]
            if len(values.get("values") or []) != 1:
                missing.append(f"rule_based rule {i}: one value maps")
                return None
            made["attributes"] = {values["key"]: str(values["values"][0])}
        rules.append(made)
    return {"type": "rules", "rules": rules, "otherwise": otherwise}


def _composable_rate(sampler: Mapping[str, Any]) -> float | None:
    if "always_on" in sampler:
        return 1.0
    if "always_off" in sampler:
        return 0.0
    if "probability" in sampler:
        return float((sampler["probability"] or {}).get("ratio", 1.0))
    return None


# -- the commands --------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    import yaml

    loaded = load_config(args.file)
    doc, missing = to_otel(loaded)
    head = ["# OpenTelemetry declarative configuration, written by sfumato export."]
    if missing:
        head.append("# No equivalent here (sfumato's configuration keeps them):")
        head += [f"#   - {item}" for item in missing]
    text = "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    _write(text, args.output)
    for item in missing:
        print(f"note: no equivalent: {item}", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    import tomlkit
    import yaml
    from sfumato.cli import CommandError

    try:
        with open(args.file, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"{args.file}: cannot read it as YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise CommandError(f"{args.file}: not a declarative configuration (expected a mapping)")
    table, missing = from_otel(doc)
    document = tomlkit.document()
    document.add(tomlkit.comment(f"Imported from {args.file} by sfumato import."))
    for item in missing:
        document.add(tomlkit.comment(f"not imported: {item}"))
    document["telemetry"] = table
    _write(tomlkit.dumps(document), args.output)
    for item in missing:
        print(f"note: not imported: {item}", file=sys.stderr)
    return 0


def _write(text: str, output: str | None) -> None:
    from sfumato.cli import write_output

    if output:
        write_output(output, text)
    else:
        sys.stdout.write(text)


class DeclarativeCommands:
    """Adds ``sfumato export`` and ``sfumato import``."""

    @hookimpl
    def sfumato_cli_commands(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> None:
        from sfumato.cli import add_command

        p = add_command(
            subparsers,
            "export",
            "write the OpenTelemetry declarative configuration equivalent to a config",
            details="Writes file format 1.x YAML for everything that has an equivalent "
            "(resource, propagators, processors and exporters, views, the samplers "
            "always_on, always_off, ratio, parent_based and rate-only rules) and lists what "
            "has none, in the file's header and on stderr. Header values are never written: "
            "${VAR} placeholders stand for them.",
            exits={0: "written", 2: "the config is invalid"},
        )
        p.add_argument("file", nargs="?", default=None, help="TOML file (default: as validate)")
        p.add_argument("--format", choices=["otel-yaml"], default="otel-yaml")
        p.add_argument("-o", "--output", default=None, help="write to this file (default: stdout)")
        p.set_defaults(func=_export)
        q = add_command(
            subparsers,
            "import",
            "read an OpenTelemetry declarative configuration into a [telemetry] table",
            details="Reads a file format 1.x YAML file and writes the equivalent [telemetry] "
            "table as TOML; what has no equivalent is listed as comments and on stderr.",
            exits={0: "written", 2: "the file cannot be read"},
        )
        q.add_argument("file", help="the YAML file")
        q.add_argument("-o", "--output", default=None, help="write to this file (default: stdout)")
        q.set_defaults(func=_import)
