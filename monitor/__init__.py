"""The drift monitor: detect drift per window (detect.py), write reports (report.py), decide and act (job)."""
