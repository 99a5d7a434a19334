"""L2 physics: per-chip compute, DRAM, collectives on a fabric, overlap, power and thermal."""
