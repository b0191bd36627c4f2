"""Segment-parallel restoration of one file: safe cuts, pieces, exact joining, resume (job.py)."""
