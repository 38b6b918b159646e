"""`python -m crlft_train` is the `crlft-train` command."""

from crlft_train.cli import main

main()
