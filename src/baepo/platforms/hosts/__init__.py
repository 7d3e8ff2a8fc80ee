"""The ``hosts`` platform: instances on plain Linux servers over SSH (see docs/hosts.md)."""
