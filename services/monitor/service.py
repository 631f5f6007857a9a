"""The monitor service on the shared runtime."""

from __future__ import annotations

from nexus.runtime import Service
from nexus.settings import Settings


class MonitorSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the monitor service (NEXUS_* variables)."""


class Monitor(Service[MonitorSettings]):
    """Health scores, alerts, latency histograms, Prometheus and the live dashboard."""

    name = "monitor"
    settings_cls = MonitorSettings
