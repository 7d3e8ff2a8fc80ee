"""The local platform: app instances as supervised processes on this machine.

``platform.LocalPlatform`` implements ``baepo.core.ports.Platform``; ``supervisor`` is the
per-instance process it starts. Nothing is imported here, so that the supervisor starts with
the few stdlib modules it needs. Callers: the controller and the CLI.
"""
