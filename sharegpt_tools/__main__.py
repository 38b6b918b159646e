"""`python -m sharegpt_tools` is the `sharegpt-tools` command."""

from sharegpt_tools.cli.main import app

app()
