"""The async_io scenario's implementation (streamflow only)."""
