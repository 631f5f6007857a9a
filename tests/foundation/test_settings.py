"""NEXUS_* settings: typed conversion and a clear error naming the bad variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from nexus.errors import SettingsError
from nexus.settings import Settings, load_settings, load_toml


def test_defaults_without_environment() -> None:
    s = load_settings(Settings, {})
    assert s.nats_url == ["nats://127.0.0.1:4222"]
    assert s.http_port == 0
    assert s.heartbeat_interval == 1.0


def test_values_are_converted_from_strings() -> None:
    s = load_settings(
        Settings,
        {
            "NEXUS_NATS_URL": "nats://a:4222, nats://b:4222",
            "NEXUS_HTTP_PORT": "8101",
            "NEXUS_HEARTBEAT_INTERVAL": "0.5",
            "NEXUS_INSTANCE": "eu-1",
            "UNRELATED": "ignored",
        },
    )
    assert s.nats_url == ["nats://a:4222", "nats://b:4222"]
    assert s.http_port == 8101
    assert s.heartbeat_interval == 0.5
    assert s.instance == "eu-1"


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("NEXUS_HTTP_PORT", "abc", "int"),
        ("NEXUS_HTTP_PORT", "70000", "<= 65535"),
        ("NEXUS_HEARTBEAT_INTERVAL", "-1", "> 0"),
        ("NEXUS_LOG_LEVEL", "loud", "debug"),
        ("NEXUS_INSTANCE", "a.b", "A-Z"),
        ("NEXUS_NATS_URL", "localhost:4222", "nats://"),
    ],
)
def test_a_bad_value_names_its_variable(var: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(Settings, {var: value})
    assert info.value.variable == var
    assert var in str(info.value)
    assert says in str(info.value)


class _Limits(msgspec.Struct, forbid_unknown_fields=True):
    max_qty: int


def test_toml_config_errors_are_clear(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("max_qty = 5\n")
    assert load_toml(good, _Limits).max_qty == 5
    typo = tmp_path / "typo.toml"
    typo.write_text("max_qyt = 5\n")
    with pytest.raises(SettingsError, match="max_qyt"):
        load_toml(typo, _Limits)
    with pytest.raises(SettingsError, match="file not found"):
        load_toml(tmp_path / "missing.toml", _Limits)
    broken = tmp_path / "broken.toml"
    broken.write_text("max_qty = \n")
    with pytest.raises(SettingsError, match="invalid TOML"):
        load_toml(broken, _Limits)


@pytest.mark.integration
def test_a_service_refuses_to_start_with_a_bad_variable() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "risk"],
        env={"NEXUS_HTTP_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "NEXUS_HTTP_PORT='not-a-port'" in proc.stderr
