"""`qa` and `python -m qa`: the CLI, with Ctrl-C honest from the first instant.

Nothing heavy is imported before the try: an interrupt while typer, rich or numpy load (the
first half second) ends with a line and exit code 130, never a traceback.
"""

import sys


def main() -> None:
    try:
        from qa.cli import app

        app(prog_name="qa")
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: the index on disk is unchanged.\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
