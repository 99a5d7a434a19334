"""L4 engines: design spaces, sweep, search and bounds, optimize, gradients, validation, calibration."""
