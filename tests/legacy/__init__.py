"""The restructured model-core modules (evaluate, ops, schedule, compute, network) as they
were before the lean restructuring (commit adebb1a), on top of the current unchanged physics
(area, memory, power, thermal, topology, overlap): ``tests/test_lean.py`` checks that the new
core gives the same metrics. Remove once the new core's run speed is at least the old one's."""
