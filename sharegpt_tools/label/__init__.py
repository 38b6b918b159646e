"""The `label` stage: the rules file, its columns and messages, the presets, the stage runner."""
