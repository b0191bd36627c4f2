"""A whole run: reader -> stages -> writer threads joined by bounded queues, batching,
live deadlines, the run configuration, progress and the run's result. Uses the
layers below it (restore/, media/, engines/, core/)."""
