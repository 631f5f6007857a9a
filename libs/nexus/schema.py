"""JSON Schema of every public message, for clients in any language (`nexus schema`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from nexus.messages import PUBLIC_MESSAGES, tag_of


def schemas() -> dict[str, dict[str, Any]]:
    """tag -> standalone JSON Schema (with its own $defs) of each public message."""
    return {tag_of(kind): msgspec.json.schema(kind) for kind in PUBLIC_MESSAGES}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(out_dir: str | Path) -> list[Path]:
    """Write `<tag>.json` per message and `index.json` (tag -> title); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    index = {}
    for tag, schema in schemas().items():
        path = out / f"{tag}.json"
        path.write_text(render(schema))
        written.append(path)
        ref = schema.get("$ref", "").rsplit("/", 1)[-1]
        index[tag] = {"file": path.name, "title": ref}
    path = out / "index.json"
    path.write_text(render({"wire_format": "JSON; the `type` field is the tag", "messages": index}))
    written.append(path)
    return written
