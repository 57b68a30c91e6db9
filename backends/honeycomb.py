"""``honeycomb``: Honeycomb over OTLP, team key from the environment, a dataset for metrics."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import Settings, Signal

from ._presets import from_environment, otlp_use

__all__ = ["HoneycombBackend"]

_HOSTS = {"us": "api.honeycomb.io", "eu": "api.eu1.honeycomb.io"}


class HoneycombOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: Literal["us", "eu"] = Field(default="us", description="Honeycomb's US or EU API.")
    endpoint: str | None = Field(
        default=None, description="Override the API URL; default telemetry.otlp_endpoint."
    )
    api_key_env: str = Field(
        default="HONEYCOMB_API_KEY",
        description="Environment variable holding the ingest key (x-honeycomb-team).",
    )
    dataset: str | None = Field(
        default=None,
        min_length=1,
        description="Dataset for metrics (x-honeycomb-dataset); default: the service name.",
    )


class HoneycombBackend(Backend):
    Options: ClassVar[type[BaseModel]] = HoneycombOptions
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces", "metrics", "logs"})

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        key = from_environment(options.api_key_env, "honeycomb API key", context.environ)
        host = _HOSTS[options.region]
        common = {
            "endpoint": options.endpoint,
            "default_grpc": f"https://{host}:443",
            "default_http": f"https://{host}",
        }
        team = {"x-honeycomb-team": key}
        # Traces and logs go to the dataset named by service.name; metrics need one named.
        dataset = SecretStr(options.dataset or settings.service_name)
        return [
            otlp_use(settings, frozenset({"traces", "logs"}), headers=team, **common),  # type: ignore[arg-type]
            otlp_use(
                settings,
                frozenset({"metrics"}),
                headers={**team, "x-honeycomb-dataset": dataset},
                **common,  # type: ignore[arg-type]
            ),
        ]
