"""The optimizer service on the shared runtime."""

from __future__ import annotations

from nexus.runtime import Service
from nexus.settings import Settings


class OptimizerSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the optimizer service (NEXUS_* variables)."""


class Optimizer(Service[OptimizerSettings]):
    """Portfolio optimisation on live market data."""

    name = "optimizer"
    settings_cls = OptimizerSettings
