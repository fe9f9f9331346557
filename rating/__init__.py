"""The `rating` command: the composition root of the project (see rating/README.md)."""
