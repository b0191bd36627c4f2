"""The `streamfix` command: argument parsing only; every command calls the public API."""
