"""The `clean` stage: one small module per step, chained by `pipeline.py`."""
