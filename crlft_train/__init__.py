"""crlft-train: the DeepSpeed C-RLFT trainer over the tokenized Arrow dataset (issue 4)."""

__version__ = "0.1.0"
