"""One topology per class of problem ``streamflow check`` reports (plus valid ones).

Each module exposes ``topology``; ``tests/unit/test_check.py`` runs ``check`` on each.
"""
