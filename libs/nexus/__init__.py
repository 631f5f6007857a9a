"""Nexus shared library: messages, subjects, bus, service runtime, resilience, embedded NATS, CLI."""

__version__ = "0.1.0"
