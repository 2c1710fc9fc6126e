"""The drift monitor: detect drift per window (drift/), write reports (report.py), decide and act (job)."""
