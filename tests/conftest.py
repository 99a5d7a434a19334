import jax

# strictness (equinox/diffrax style): silent broadcasting under vmap is an error
jax.config.update("jax_numpy_rank_promotion", "raise")
