"""The top floor: the ``tagwatch`` command and the wiring that runs the stages together.

The CLI (``commands.cli``), the embedded demo, the backtest driver, the replay client, the alert sink, the
scheduler that runs the monitor and retrain jobs, and polling helpers. It imports ``service``, ``monitor``,
``retrain`` and the core ``tagwatch``; nothing below imports it (checked by import-linter, see pyproject.toml).
"""
