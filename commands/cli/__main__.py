"""``python -m commands.cli``: the ``tagwatch`` command."""

from commands.cli import main

main()
