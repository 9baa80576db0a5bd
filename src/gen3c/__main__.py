"""``python -m gen3c`` and the ``gen3c`` command (the entry point pyproject.toml names).

Ctrl-C and SIGTERM are taken over before the command line's modules load (typer and rich, most
of the first 0.1 s), so that an interrupt then ends in exit code 130 (143) as later ones do
(:func:`gen3c.errors.exit_command_line`), not in a ``KeyboardInterrupt`` traceback.
"""

from gen3c.errors import exit_command_line


def main() -> None:
    exit_command_line(_command_line)


def _command_line() -> None:
    from gen3c.cli import main as run_command_line

    run_command_line()


if __name__ == "__main__":
    main()
