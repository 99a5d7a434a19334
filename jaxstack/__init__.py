"""jaxstack: vectorised JAX performance / power / thermal model of distributed LLM inference."""

__version__ = "0.1.0"
