"""The order-engine service on the shared runtime."""

from __future__ import annotations

from nexus.runtime import Service
from nexus.settings import Settings


class OrderEngineSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the order-engine service (NEXUS_* variables)."""


class OrderEngine(Service[OrderEngineSettings]):
    """Price-time matching with durable order flow and exact recovery."""

    name = "order-engine"
    settings_cls = OrderEngineSettings
