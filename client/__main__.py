"""`python -m client` runs the tritonbench command line (for hosts where the package is not installed)."""

from client.cli import main

main()
