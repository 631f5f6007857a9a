"""The risk service on the shared runtime."""

from __future__ import annotations

from nexus.runtime import Service
from nexus.settings import Settings


class RiskSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the risk service (NEXUS_* variables)."""


class Risk(Service[RiskSettings]):
    """Pre-trade risk checks in front of the order engine; positions, P&L, kill switch."""

    name = "risk"
    settings_cls = RiskSettings
