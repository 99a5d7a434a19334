"""The model core as it was before the lean restructuring (commit adebb1a), kept as a test
fixture: ``tests/test_lean.py`` checks that the new core gives the same metrics."""
