"""`qa` and `python -m qa`: the CLI, with Ctrl-C honest from the first instant and usage
errors in JSON when JSON was asked for.

Nothing heavy is imported before the try: an interrupt while typer, rich or numpy load (the
first half second) ends with a line and exit code 130, never a traceback.
"""

import sys


def main() -> None:
    try:
        from qa.cli import run

        code = run(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: the index on disk is unchanged.\n")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
