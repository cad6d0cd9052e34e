"""The one exception type users see.

Library code raises `MnistgenError` with a one-line message that names the fix; the CLI
prints it as `Error: <message>` on stderr and exits 1. Anything else escaping is a bug.
"""


class MnistgenError(Exception):
    """A user-facing failure: bad input, missing data, unreadable weights."""
