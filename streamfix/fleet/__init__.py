"""Running restoration on many workers: local processes or Ray; batches of files; live channels."""
