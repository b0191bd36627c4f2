"""Peak resident memory of this process, and of one step of it.

Linux keeps the high-water mark of the resident set (VmHWM in /proc/self/status);
writing "5" to /proc/self/clear_refs resets it to the current resident set (Linux
4.0+), so the peak of one measurement (an engine row, a pipeline run) can be read in
a process that ran others before. Where that fails, the peak is the process's since
it started (getrusage), which `reset_peak` reports by returning False.
"""

from __future__ import annotations


def peak_rss_mib() -> float:
    """The resident set's high-water mark in MiB (since the start or the last reset)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak() -> bool:
    """Start a new high-water mark at the current resident set; False where Linux cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True
