"""Snapshots: frozen, curated datasets (freeze, splits, health report, diff, export)."""
