"""``python -m shellwatch``."""

from shellwatch.cli import main

main()
