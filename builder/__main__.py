"""`python -m builder` runs the tritonbuild command line (for hosts where the package is not installed)."""

from builder.cli import main

main()
