"""``python -m connector`` runs the ``segsync`` command."""

from connector.cli import main

main()
