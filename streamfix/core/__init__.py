"""The bottom layer: the CAR-DRN network, weights files, errors, the YAML config
loader, JPEG table facts and the worker-thread toolkit. Imports nothing else from
streamfix (docs/architecture.md)."""
