"""PyAV in and out. This package knows PyAV and numpy, nothing about models."""
