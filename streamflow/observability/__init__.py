"""Observability: health endpoints, metrics and lineage."""
