"""Speed benchmarks (installed as `streamfix.benchmarks`, so `streamfix bench` can run them)."""
