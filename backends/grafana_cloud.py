"""``grafana-cloud``: Grafana Cloud's OTLP/HTTP gateway with basic auth from the environment."""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sfumato import ConfigError
from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import SIGNALS, Settings, Signal

from ._presets import from_environment, otlp_use

__all__ = ["GrafanaCloudBackend"]

_ZONE = re.compile(r"^[a-z0-9-]+$")


class GrafanaCloudOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(
        default=None,
        description="The stack's OTLP gateway URL, e.g. "
        "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp; default telemetry.otlp_endpoint.",
    )
    zone: str | None = Field(
        default=None,
        description="The stack's zone (e.g. prod-eu-west-2), to build the gateway URL from.",
    )
    instance_id: str | None = Field(
        default=None, description="The stack's instance id; default: from instance_id_env."
    )
    instance_id_env: str = Field(
        default="GRAFANA_CLOUD_INSTANCE_ID",
        description="Environment variable holding the instance id.",
    )
    token_env: str = Field(
        default="GRAFANA_CLOUD_API_KEY",
        description="Environment variable holding the access token (never written in files).",
    )


class GrafanaCloudBackend(Backend):
    Options: ClassVar[type[BaseModel]] = GrafanaCloudOptions
    signals: ClassVar[frozenset[Signal]] = frozenset(SIGNALS)

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        endpoint = options.endpoint or settings.otlp_endpoint
        if endpoint is None and options.zone:
            if not _ZONE.match(options.zone):
                raise ConfigError(
                    "backend_options.zone: expected a zone like 'prod-eu-west-2', "
                    f"got {options.zone!r}"
                )
            endpoint = f"https://otlp-gateway-{options.zone}.grafana.net/otlp"
        if endpoint is None:
            raise ConfigError(
                "grafana-cloud needs the stack's OTLP gateway: set backend_options.zone "
                "(e.g. 'prod-eu-west-2') or backend_options.endpoint"
            )
        if settings.protocol == "grpc" and settings.source_of("protocol") != "default":
            context.notice("grafana-cloud's OTLP gateway speaks http/protobuf: protocol ignored")
        instance = (
            options.instance_id
            or from_environment(
                options.instance_id_env, "grafana-cloud instance id", context.environ
            ).get_secret_value()
        )
        token = from_environment(
            options.token_env, "grafana-cloud token", context.environ
        ).get_secret_value()
        credentials = base64.b64encode(f"{instance}:{token}".encode()).decode("ascii")
        headers = {"Authorization": SecretStr(f"Basic {credentials}")}
        return [
            otlp_use(
                settings,
                self.signals,
                endpoint=endpoint,
                default_grpc=endpoint,
                default_http=endpoint,
                headers=headers,
                protocol="http/protobuf",
            )
        ]
