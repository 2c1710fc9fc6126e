"""The real service in a process of its own, for tests/service/test_crash.py: ``python -m tests.service.crash_app
MODEL_DIR PORT``. Settings come from the ``TAGWATCH_*`` environment; the model from a directory the test saved with
``TagModel.save`` (no registry)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    model_dir, port = argv
    import uvicorn

    from service.app import create_app
    from tagwatch.model import TagModel
    from tagwatch.settings import Settings
    from tests.support import InMemorySource

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source = InMemorySource()
    source.add("1", TagModel.load(Path(model_dir)))
    app = create_app(Settings(), source=source)
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
