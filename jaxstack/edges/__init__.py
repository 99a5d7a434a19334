"""L5 edges: strict YAML / Hugging Face input, presets, output files, the compile cache."""
