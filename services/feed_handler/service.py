"""The feed-handler service on the shared runtime."""

from __future__ import annotations

from nexus.runtime import Service
from nexus.settings import Settings


class FeedHandlerSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the feed-handler service (NEXUS_* variables)."""


class FeedHandler(Service[FeedHandlerSettings]):
    """Normalised market data from venue adapters onto priority subjects."""

    name = "feed-handler"
    settings_cls = FeedHandlerSettings
