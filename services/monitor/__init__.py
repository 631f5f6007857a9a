"""Nexus monitor: Health scores, alerts, latency histograms, Prometheus and the live dashboard."""
