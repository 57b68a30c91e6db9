"""Botticelli's plugin of the command line (entry point ``botticelli`` of the ``sfumato.cli``
group): adds ``sfumato demo`` (:mod:`.demo`), and tells ``sfumato alerts`` the kind, unit and
bucket boundaries of the Botticelli metrics, so that health rules on them name the series
Prometheus exposes."""

from __future__ import annotations

import argparse

from sfumato import hookimpl
from sfumato.alerts import Instrument

from . import demo
from .metrics import GENAI_INSTRUMENTS, INSTRUMENTS

__all__ = ["BotticelliCommands", "instruments"]


def instruments() -> dict[str, Instrument]:
    """Every Botticelli instrument by metric name, with its histogram buckets."""
    return {
        spec.name: Instrument(
            spec.kind,
            spec.unit,
            tuple(spec.buckets) if spec.kind == "histogram" else None,
        )
        for spec in INSTRUMENTS + GENAI_INSTRUMENTS
    }


class BotticelliCommands:
    """Adds ``sfumato demo``; knows the Botticelli instruments for ``sfumato alerts``."""

    @hookimpl
    def sfumato_cli_commands(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> None:
        demo.register(subparsers)

    @hookimpl
    def sfumato_metric_instruments(self) -> dict[str, Instrument]:
        return instruments()
