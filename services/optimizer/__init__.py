"""Nexus optimizer: Portfolio optimisation on live market data."""
