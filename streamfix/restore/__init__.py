"""Decoded frames in, restored frames out: the Restorer, the frame planes <-> model
input conversion, and how strong each frame's compression was (conditioning).
Uses core/, engines/ and media/; knows nothing of threads or files."""
