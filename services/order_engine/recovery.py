"""Where publishing stopped: the position of the last output each output stream holds.

Every output's id is `<input stream>:<k>of<n>:<input sequence>:<index>` (`output_id`), deterministic
since the engine is: replaying a command produces the ids it produced the first time. An output stream
holds a gap-free prefix of the partition's outputs (see outputs.py), so its last message is a high-water
mark: on replay, an output at or before it is already stored and is skipped; everything after it is
published. Ids of another input stream or partitioning (before a switch) say nothing about this one.
"""

from __future__ import annotations

Position = tuple[int, int]
"""(input sequence, index of the output among that command's outputs)"""


def output_id(in_stream: str, partition: int, partitions: int, in_seq: int, index: int) -> str:
    return f"{in_stream}:{partition}of{partitions}:{in_seq}:{index}"


def position(msg_id: str, in_stream: str, partition: int, partitions: int) -> Position | None:
    """The position an output id stands for, or None when it belongs to another input or partitioning."""
    parts = msg_id.split(":")
    if len(parts) != 4 or parts[0] != in_stream or parts[1] != f"{partition}of{partitions}":
        return None
    try:
        return int(parts[2]), int(parts[3])
    except ValueError:
        return None
