"""streamfix: real-time removal of compression artifacts from video and images."""

__version__ = "0.1.0"
