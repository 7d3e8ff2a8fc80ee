"""Platforms: where instances run (local processes; hosts and Kubernetes later)."""
