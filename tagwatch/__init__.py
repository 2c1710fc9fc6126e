"""tagwatch: the shared core (settings, text preparation, data loading, the tag model, database, registry)."""

__version__ = "0.1.0"
