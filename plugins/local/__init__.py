"""The embedded local store: OTLP/JSON lines files, their reader and ``sfumato report``.

- :mod:`.exporters`: the ``local`` exporter plugin (traces, metrics, logs).
- :mod:`.files`: file naming, rotation and the size cap.
- :mod:`.otlp_json`: OTLP/JSON encoding of export requests, and decoding back.
- :mod:`.store`: reading a store back (every rotated file, in write order).
- :mod:`.report`: the summary behind ``sfumato report``.
- :mod:`.cli`: the ``sfumato report`` command, which this package's plugin of the command line
  (entry point ``local-store`` of the ``sfumato.cli`` group) adds.
"""

from __future__ import annotations

from .exporters import LocalExporter
from .options import LocalOptions

__all__ = ["LocalExporter", "LocalOptions"]
