"""`python -m mnistgen` runs the same CLI as the `mnistgen` console script."""

from mnistgen.cli import main

main()
