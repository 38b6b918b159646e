"""Thin Typer commands: parse options, call one library function, print the summary."""
