"""Settings from `NEXUS_*` environment variables, validated at start.

A settings class is a msgspec Struct; each field `foo_bar` is read from `NEXUS_FOO_BAR`. Values are
converted to the field's annotated type (constraints from `msgspec.Meta` apply); a bad value raises
SettingsError naming the variable, e.g. `NEXUS_HTTP_PORT='abc': expected int`. Lists are comma-separated.

Settings are built in a service's `__main__` and passed down; nothing reads the environment on import.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import msgspec

from nexus.errors import SettingsError
from nexus.subjects import token

PREFIX = "NEXUS_"

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


def _default_instance() -> str:
    host = socket.gethostname().split(".")[0] or "local"
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in host)


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What every service needs. Subclass to add a service's own fields."""

    nats_url: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    """NATS servers, comma-separated; the client fails over between them and reconnects forever."""
    instance: str = msgspec.field(default_factory=_default_instance)
    """Instance name; unique per service (heartbeat subject sys.hb.<service>.<instance>)."""
    http_host: str = "127.0.0.1"
    http_port: Port = 0
    """REST control plane port; 0 picks a free port (logged and carried in the heartbeat)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    heartbeat_interval: PositiveFloat = 1.0
    drain_timeout: PositiveFloat = 5.0
    config_file: str = ""
    """Optional TOML file with the service's structured config (feeds, limits, instruments)."""
    stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    """JetStream replicas of the streams and buckets the service declares: 3 on a 3-node cluster (compose),
    so losing a server loses no stored order."""
    data_dir: str = "var"
    """Where the service keeps local state (snapshots); `make clean` removes it."""

    def __post_init__(self) -> None:
        try:
            token(self.instance)
        except ValueError as exc:
            raise SettingsError(var_name("instance"), self.instance, str(exc)) from None
        for url in self.nats_url:
            if "://" not in url:
                raise SettingsError(var_name("nats_url"), url, "expected a URL like nats://127.0.0.1:4222")


S = TypeVar("S", bound=Settings)


def var_name(field: str) -> str:
    return PREFIX + field.upper()


def _is_list(tp: Any) -> bool:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return get_origin(tp) in (list, tuple)


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """Build `cls` from NEXUS_* variables in `environ` (default: os.environ), then `overrides`."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        name = var_name(field.name)
        if name not in env:
            continue
        raw: Any = env[name].strip()
        if _is_list(field.type):
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        try:
            values[field.name] = msgspec.convert(raw, field.type, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(name, env[name], _reason(exc) + _choices(field.type)) from None
    values.update(overrides)
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        where = str(exc).rpartition("$.")[2].split(".")[0].split("[")[0].rstrip("`")
        raise SettingsError(
            var_name(where) if where else "settings", values.get(where), _reason(exc)
        ) from None


def _choices(tp: Any) -> str:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) is Literal:
        return "; expected one of: " + ", ".join(str(a) for a in get_args(tp))
    return ""


def _reason(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    return text.split(" - at ")[0].replace("`", "")


def load_toml(path: str | Path, kind: type[Any], variable: str = var_name("config_file")) -> Any:
    """Read a TOML config file into `kind` (a Struct with forbid_unknown_fields), with clear errors."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SettingsError(variable, str(p), "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(variable, str(p), f"invalid TOML: {exc}") from None
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(variable, str(p), str(exc).replace("`", "")) from None
