"""streamflow benchmark harness (see bench/README.md)."""
