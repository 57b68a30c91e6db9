"""The ``[telemetry]`` table as pydantic models.

Every model forbids unknown keys. Plugin-owned tables (``sampler``, ``exporters``,
``backend_options``) are kept as plain data here and validated by the plugin's own options
model when the plugin host resolves them (see :mod:`sfumato._resolve`).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from ._validation import is_secret_key

__all__ = [
    "SIGNALS",
    "ExporterSettings",
    "HeaderValue",
    "HealthRule",
    "HttpSettings",
    "LogsSettings",
    "MetricsSettings",
    "PluginSettings",
    "ReloadSettings",
    "ScrubbingSettings",
    "Settings",
    "Signal",
    "ViewSettings",
]

Signal = Literal["traces", "metrics", "logs"]
# Each exporter runs export threads of its own: more than this is a mistake, not a plan.
MAX_EXPORTERS = 32
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")

ResourceValue = str | bool | int | float
HOUR_MS = 3_600_000
Propagator = Literal["tracecontext", "baggage"]
_PROPAGATORS: tuple[Propagator, ...] = ("tracecontext", "baggage")


_URL_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31}://)[^/@\s]+@")


def scrub_url_anywhere(text: str) -> str:
    """``text`` with the user and password of every URL in it shown as ``***``."""
    return _URL_ANYWHERE.sub(r"\g<1>***@", text)


_URL_ANYWHERE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}://)[^/@\s'\"]+@")


def scrub_url(value: str) -> str:
    """``value`` with a URL's user and password (``scheme://user:pass@``) shown as ``***``."""
    return _URL_USERINFO.sub(r"\g<1>***@", value)


def _scrubbed(value: Any, key: str = "") -> Any:
    """``value`` for a repr: secret-named keys' values as ``***``, URL passwords hidden."""
    if isinstance(value, SecretStr):
        return value
    if key and is_secret_key(key):
        return "***"
    if isinstance(value, str):
        return scrub_url(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def _one_line_secret(value: SecretStr) -> SecretStr:
    if any(c in value.get_secret_value() for c in "\r\n"):
        # Never echo the value: it is a secret, and a line break in it could forge a header.
        raise ValueError(
            "the value holds a line break (a trailing newline read from a secret file?); remove it"
        )
    return value


#: A header's value: secret, and one line (CR or LF in it would end the header early).
HeaderValue = Annotated[SecretStr, AfterValidator(_one_line_secret)]


class _Redacted(BaseModel):
    """A repr that never shows a secret: the plugin-owned tables (exporters' options, backend
    options) are plain data here, not SecretStr, until their plugin validates them."""

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, _scrubbed(value, name or "")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False)


class ViewSettings(_Strict):
    """Per-instrument view: histogram bucket boundaries, or a rename."""

    buckets: list[float] | None = Field(
        default=None, description="Explicit histogram bucket boundaries, ascending."
    )
    name: str | None = Field(default=None, description="Export the instrument under this name.")
    description: str | None = Field(
        default=None, description="Export the instrument with this description."
    )

    @field_validator("buckets")
    @classmethod
    def _ascending(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not all(math.isfinite(b) for b in value):
            raise ValueError("bucket boundaries must be finite numbers (no inf or nan)")
        if value is not None and any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("bucket boundaries must be strictly ascending")
        return value


class MetricsSettings(_Strict):
    enabled: bool = Field(default=True, description="Build a MeterProvider.")
    export_interval_ms: Annotated[int, Field(ge=100)] = Field(
        default=60_000, description="How often push backends export metrics."
    )
    views: dict[str, ViewSettings] = Field(
        default_factory=dict, description="Per-instrument views keyed by instrument name."
    )

    @field_validator("views")
    @classmethod
    def _one_name_per_instrument(cls, value: dict[str, ViewSettings]) -> dict[str, ViewSettings]:
        for key, view in value.items():
            if view.name and any(c in key for c in "*?"):
                raise ValueError(
                    f"view {key!r} is a wildcard that can match several instruments, so it "
                    "cannot give them one name: name an instrument exactly, or drop 'name'"
                )
        return value

    exemplars: Literal["always_off", "trace_based", "always_on"] = Field(
        default="always_off",
        description="Which measurements may become exemplars (a value with the trace and "
        "span it was recorded in): 'trace_based' those recorded inside a sampled span (the "
        "SDK's default; a few microseconds per such record), 'always_on' all, 'always_off' "
        "none.",
    )


class LogsSettings(_Strict):
    enabled: bool = Field(default=True, description="Bridge Python logging to OpenTelemetry logs.")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level of log records exported."
    )
    stderr_fallback: bool = Field(
        default=True,
        description="Print WARNING and above to stderr, as Python does, while no logging "
        "handler of the application's would take them. sfumato's own warnings are printed "
        "so either way.",
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ScrubbingSettings(_Strict):
    enabled: bool = Field(
        default=True,
        description="Scrub secrets from span attributes, event attributes, status messages "
        "and log records before export (on the export thread).",
    )
    extra_patterns: list[str] = Field(
        default_factory=list,
        description="More secrets' names (regular expressions, case-insensitive), matched "
        "like the defaults: in attribute keys, and before the = or : of a pair in a string.",
    )
    allow: list[str] = Field(
        default_factory=list,
        description="Attribute keys never scrubbed (exact, or globs such as "
        "'http.request.header.x-*').",
    )
    values: bool = Field(
        default=True,
        description="Also scan string values: name=value pairs of secrets' names, Bearer "
        "and Basic credentials, token shapes (JWT, sk-, AKIA, ghp_, xox), card numbers.",
    )

    @field_validator("extra_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        from ._scrubbing import check_pattern

        for pattern in value:
            check_pattern(pattern)
        return value


class ReloadSettings(_Strict):
    sighup: bool = Field(
        default=True,
        description="SIGHUP reads the config file again and applies its sampler tree (when "
        "the application set no SIGHUP handler of its own); see `sfumato reload`.",
    )
    watch: bool = Field(
        default=False,
        description="Also apply the sampler tree when the config file's contents change.",
    )
    interval_ms: Annotated[int, Field(ge=100, le=HOUR_MS)] = Field(
        default=2000, description="With watch: how often the file is checked."
    )


class PluginSettings(_Strict):
    disable: list[str] = Field(
        default_factory=list,
        description="Plugin names (or 'kind:name') not to load; also SFUMATO_DISABLE_PLUGINS.",
    )
    allow_import_paths: bool = Field(
        default=True,
        description="Allow 'module:attr' references to code in sampler and exporter types.",
    )


_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class HealthRule(_Strict):
    """One ``[[telemetry.http.health]]`` rule, evaluated by ``/healthz`` and exported by
    ``sfumato alerts``. It fails when, over the last ``window``:

    - ``ratio``: the increase of ``metric`` points matching ``where`` over the increase of all
      its points exceeds ``threshold`` (a fraction);
    - ``count``: the increase of the points matching ``where`` exceeds ``threshold``;
    - ``quota``: that increase exceeds ``threshold`` (a fraction) of ``quota``;
    - ``max``: a histogram observation matching ``where`` exceeds ``threshold``.
    """

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Rule (and Prometheus alert) name."
    )
    metric: str = Field(min_length=1, description="Instrument name, e.g. bot.generation.runs.")
    kind: Literal["ratio", "count", "quota", "max"] = Field(description="What is compared.")
    threshold: Annotated[float, Field(ge=0)] = Field(
        description="The limit: a fraction for ratio and quota, a count, or a value for max."
    )
    window: str = Field(default="5m", description="Look-back window: 30s, 5m, 1h, 1d.")
    where: dict[str, str] = Field(
        default_factory=dict, description="Attribute values the counted points must have."
    )
    quota: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="For kind quota: the amount allowed per window."
    )
    min_total: Annotated[int, Field(ge=0)] = Field(
        default=1, description="For kind ratio: fewer events than this in the window pass."
    )
    unit: str | None = Field(
        default=None, description="The instrument's unit, when sfumato cannot look it up."
    )
    severity: str = Field(default="warning", description="Alert label severity.")
    summary: str | None = Field(default=None, description="Alert annotation summary.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        text = value.strip()
        if len(text) < 2 or text[-1] not in _WINDOW_UNITS or not text[:-1].isdigit():
            raise ValueError(f"expected a window such as 30s, 5m, 1h or 1d, got {value!r}")
        if int(text[:-1]) <= 0:
            raise ValueError("the window must be longer than 0")
        return text

    @field_validator("quota")
    @classmethod
    def _quota(cls, value: float | None, info: ValidationInfo) -> float | None:
        if info.data.get("kind") == "quota" and value is None:
            raise ValueError("a rule of kind quota needs a quota")
        return value

    @property
    def window_s(self) -> int:
        return int(self.window[:-1]) * _WINDOW_UNITS[self.window[-1]]


class HttpSettings(_Strict):
    enabled: bool = Field(default=False, description="Serve /metrics and /healthz over HTTP.")
    host: str = Field(default="127.0.0.1", description="Bind address; loopback by default.")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=9464, description="0 picks one.")
    collect_interval_ms: Annotated[int, Field(ge=100, le=HOUR_MS)] = Field(
        default=5000, description="How often the health rules' metrics are sampled."
    )
    health: list[HealthRule] = Field(
        default_factory=list, description="Rules /healthz evaluates (and sfumato alerts exports)."
    )


class ExporterSettings(_Redacted, BaseModel):
    """One ``[[telemetry.exporters]]`` entry: ``type`` plus the exporter's own options."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Exporter plugin name, or 'module:attr'.")
    signals: list[Signal] | None = Field(
        default=None, description="Signals to send through it; default: all it supports."
    )

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


_ENDPOINT_SCHEMES = ("http", "https", "grpc", "grpcs")


def check_endpoint(endpoint: str) -> None:
    """Raise ValueError unless ``endpoint`` is a URL an OTLP exporter can use: an http(s)://
    URL, or for gRPC also ``host:port``; a host, and a port that is a number in range."""
    expected = "expected a URL such as http://collector:4317 (http or https, a host, a port)"
    if not endpoint or any(c.isspace() for c in endpoint) or not endpoint.isprintable():
        raise ValueError(f"{expected}, got {endpoint!r}")
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if "://" in endpoint and parts.scheme not in _ENDPOINT_SCHEMES:
        raise ValueError(f"{expected}; the scheme {parts.scheme!r} is not one of them")
    if not parts.hostname:
        raise ValueError(f"{expected}; {endpoint!r} names no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port when it is read
    except ValueError:
        raise ValueError(f"{expected}; the port of {endpoint!r} is not a number 0-65535") from None


class Settings(_Redacted, _Strict):
    """The validated ``[telemetry]`` table."""

    enabled: bool = Field(default=True, description="Master switch; false installs nothing.")
    service_name: str = Field(
        default="unknown_service", min_length=1, description="Resource service.name."
    )
    service_version: str | None = Field(default=None, description="Resource service.version.")
    environment: str | None = Field(
        default=None, description="Deployment environment (resource deployment.environment)."
    )
    backend: str = Field(default="local", description="Backend plugin name.")
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Options validated by the backend plugin's own model."
    )
    otlp_endpoint: str | None = Field(default=None, description="OTLP endpoint URL.")
    protocol: Literal["grpc", "http/protobuf"] = Field(
        default="grpc", description="OTLP transport of the backend's exporters."
    )
    headers: dict[str, HeaderValue] = Field(
        default_factory=dict, description="Headers sent to the backend. Secret: always redacted."
    )
    insecure: bool = Field(default=False, description="Plaintext gRPC / unverified TLS.")
    compression: Literal["none", "gzip"] = Field(
        default="none", description="Compression of OTLP exports."
    )
    sampling_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        default=None, description="Shorthand for a parent_based sampler over ratio(x)."
    )
    export_console: bool = Field(default=False, description="Also print telemetry to stdout.")
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=512, description="Spans per export batch."
    )
    batch_timeout_ms: Annotated[int, Field(ge=1, le=HOUR_MS)] = Field(
        default=5000, description="Longest a span waits in the queue before export."
    )
    max_queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=16_384,
        description=(
            "Spans (and log records) held for export; beyond it, whole traces are dropped "
            "and counted, those kept by probability first."
        ),
    )
    on_full: Literal["drop", "block"] = Field(
        default="drop",
        description=(
            "When the export queue is full: 'drop' (counted), or 'block': the ending span "
            "waits up to block_ms for room first."
        ),
    )
    block_ms: Annotated[int, Field(ge=1, le=HOUR_MS)] = Field(
        default=1000, description="With on_full = 'block': the longest a caller waits for room."
    )
    export_workers: Annotated[int, Field(ge=1, le=16)] = Field(
        default=2,
        description=(
            "Export calls in flight at once per OTLP exporter: while one batch waits for "
            "the backend's answer, the next is encoded and sent. Exporters that cannot be "
            "called from several threads (the local store, the console) use one."
        ),
    )
    export_timeout_ms: Annotated[int, Field(ge=1, le=HOUR_MS)] = Field(
        default=10_000, description="Deadline for one export call."
    )
    export_retry_ms: Annotated[int, Field(ge=0, le=HOUR_MS)] = Field(
        default=30_000,
        description="How long a batch whose export failed is kept and retried; 0: drop it.",
    )
    shutdown_timeout_ms: Annotated[int, Field(ge=0, le=HOUR_MS)] = Field(
        default=5000, description="shutdown() returns within this, backend reachable or not."
    )
    handle_sigterm: bool = Field(
        default=True,
        description=(
            "When the application set no SIGTERM handler, SIGTERM shuts telemetry down "
            "(within shutdown_timeout_ms) before the process exits of it."
        ),
    )
    propagators: list[Propagator] = Field(
        default_factory=lambda: list(_PROPAGATORS),
        description="Context propagators installed globally (W3C headers).",
    )
    resource: dict[str, ResourceValue] = Field(
        default_factory=dict, description="Extra resource attributes."
    )
    sampler: dict[str, Any] | None = Field(
        default=None, description="Sampler tree: 'type' plus options and nested samplers."
    )
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)
    scrubbing: ScrubbingSettings = Field(default_factory=ScrubbingSettings)
    reload: ReloadSettings = Field(default_factory=ReloadSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    exporters: list[ExporterSettings] = Field(
        default_factory=list,
        max_length=MAX_EXPORTERS,
        description="Extra exporters beside the backend's.",
    )
    # Checked when the plan is made (see _instrumentations): its own errors name the choices.
    instrumentations: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Libraries to instrument, by their instrumentor's entry-point name (requests, "
            'flask, sqlite3, ...): true, false, or a table of its options; "*" = true: '
            "every installed one."
        ),
    )

    # Filled by the loader: where each dotted key came from, and the file read.
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _path: str | None = PrivateAttr(default=None)
    # Dotted key -> its text in the file, for values substituted from ``${VAR}``.
    _templates: dict[str, str] = PrivateAttr(default_factory=dict)
    # The environment mapping the loader read (``load_settings(env=...)``); None: os.environ.
    _environ: Any = PrivateAttr(default=None)

    @field_validator("sampler")
    @classmethod
    def _sampler_has_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("type"), str):
            raise ValueError("a sampler table needs a 'type' string, e.g. type = \"ratio\"")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_endpoint(value)
        return value

    @field_validator("max_queue_size")
    @classmethod
    def _queue_holds_a_batch(cls, value: int, info: ValidationInfo) -> int:
        batch = info.data.get("batch_size")
        if isinstance(batch, int) and value < batch:
            raise ValueError(f"expected a value >= batch_size ({batch}), so a batch fits")
        return value

    @property
    def path(self) -> str | None:
        """The file these settings were read from, if any."""
        return self._path

    def source_of(self, key: str) -> str:
        """Where a dotted key's value came from: default, file, env:NAME or argument."""
        while key:
            if key in self._sources:
                return self._sources[key]
            key = key.rpartition(".")[0]
        return "default"

    def header_values(self) -> dict[str, str]:
        """The headers with their secret values, for exporters only."""
        return {k: v.get_secret_value() for k, v in self.headers.items()}
