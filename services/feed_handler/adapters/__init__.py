"""Venue adapters, one module each behind one interface (adapters.base.Adapter)."""
