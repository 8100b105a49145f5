"""``python -m interleave``: the same as the ``interleave`` command."""

from .cli import main

main()
