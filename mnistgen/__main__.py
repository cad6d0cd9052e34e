"""`python -m mnistgen` and the `mnistgen` console script: the same CLI.

Ctrl-C and SIGTERM are held from the first line, before the CLI's own imports (a few tenths of a
second), until the command's work starts (see runtime.hold_signals): one that comes meanwhile ends
the command as any other does, with its `Interrupted:` line, not a traceback or a silent exit.
"""

from mnistgen.runtime import hold_signals


def run() -> None:
    hold_signals()
    from mnistgen.cli import main

    main()


if __name__ == "__main__":
    run()
