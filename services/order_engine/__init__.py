"""Nexus order-engine: Price-time matching with durable order flow and exact recovery."""
