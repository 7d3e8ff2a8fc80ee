"""Routers: how traffic reaches instances (the built-in proxy; HAProxy, nginx later)."""
