"""Unit tests: no broker, fast. (A package, so module names never clash with tests/integration.)"""
