"""Venue protocols as pure logic: bytes in, normalised messages out (no sockets, no clock reads except the
receive time handed in). The websocket adapters and the replay adapter drive the same code."""
