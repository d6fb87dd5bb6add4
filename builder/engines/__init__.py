"""The serving backends that `make-repo --engine` chooses from."""
