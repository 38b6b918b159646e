"""sharegpt-tools: turn mixed-quality ShareGPT dumps into C-RLFT training data."""

__version__ = "0.1.0"
