"""Benchmarks (`make bench`): each measures StreamLake against a baseline in the same run."""
