"""Example topologies: one module each, exposing ``topology``."""
