"""The `subsample` stage: per-class ratios of `labeled/` (the paper's data-size experiments)."""
