"""Nexus feed-handler: Normalised market data from venue adapters onto priority subjects."""
