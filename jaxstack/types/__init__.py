"""L1 types: the design pytree (hardware, workload, mapping, design), metrics, units, domains."""
