"""Demo traffic for `make run`: a market maker quoting around the synthetic feed and random takers."""
