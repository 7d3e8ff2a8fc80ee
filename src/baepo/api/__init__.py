"""The REST API (FastAPI) served by ``baepo server``."""
