"""Training, evaluation and promotion of tag models (train.py, evaluate.py, promote.py, job.py)."""
