"""Nexus risk: Pre-trade risk checks in front of the order engine; positions, P&L, kill switch."""
