"""The restructured model-core modules (evaluate, ops, schedule, compute, network) as they
were before the lean restructuring (commit adebb1a), on top of the current unchanged physics
(area, memory, power, thermal, topology, overlap): ``tests/test_lean.py`` checks that the new
core gives the same metrics. Physics fixes made since are applied here the same way (session 6:
no activation-quantisation pass on 16-bit GEMMs); fields added since (``model.gemm_act_bytes``)
are not known here, so the comparison runs where they are unset. Remove once the new core's
run speed is at least the old one's."""
