"""The commands of ``leadscore``, one module per verb group; ``leadscore/cli.py`` assembles
them into the Typer app."""
