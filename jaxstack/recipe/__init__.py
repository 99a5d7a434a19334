"""L3 recipe: the transformer layer as an op table, stage times, serving regimes, ``evaluate``."""
