"""The `tokenize` stage: templates, the tokenizer wrapper, token rows and the stage runner."""
