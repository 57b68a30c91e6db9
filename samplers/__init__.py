"""sfumato's sampler plugins and the tail-decision processor.

Built-ins (entry points in the ``sfumato.samplers`` group): ``always_on``, ``always_off``,
``ratio``, ``parent_based``, ``rate-limit``, ``per-narrative-type``, ``load-adaptive`` and
``error-always``. Custom samplers subclass ``HeadSampler`` or ``TraceEndSampler``.
"""

from ._consistent import ADJUSTED_COUNT, POLICY, SAMPLE_RATE
from ._tail import FinishedTrace
from .bases import HeadSampler, SpanStart, TraceEndSampler
from .narrative import NARRATIVE_TYPE, narrative_type, narrative_type_context

__all__ = [
    "ADJUSTED_COUNT",
    "NARRATIVE_TYPE",
    "POLICY",
    "SAMPLE_RATE",
    "FinishedTrace",
    "HeadSampler",
    "SpanStart",
    "TraceEndSampler",
    "narrative_type",
    "narrative_type_context",
]
