"""`qa` and `python -m qa`: the CLI, with Ctrl-C honest from the first instant and usage
errors in JSON when JSON was asked for.

`qa ask` with a server running for its index (qa serve writes DIR/serve.json) is answered by
that server (qa.client) before qa.cli, and with it numpy, onnxruntime and faiss, is imported.

Nothing heavy is imported before the try: an interrupt while typer, rich or numpy load (the
first half second) ends with a line and exit code 130, never a traceback.
"""

import sys


def main() -> None:
    try:
        from qa.client import try_server

        served = try_server(sys.argv[1:])
        if served is not None:
            sys.exit(served)
        from qa.cli import run

        code = run(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: the index on disk is unchanged.\n")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
