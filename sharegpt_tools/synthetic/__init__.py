"""Synthetic inputs made here, not downloaded: the ShareGPT-shaped dump and a toy tokenizer."""
