"""Training CAR-DRN models (installed as `streamfix.train`).

Read in this order: config.py (what a run is), data.py (images, patches, validation
split), degrade.py (real JPEG/x264/x265 encodes that make the training pairs),
train.py (config -> data -> model -> optimiser -> loop -> checkpoints -> weights).
"""
