"""The nginx router: baepo runs a real nginx per listener and drives it by graceful reloads.

``render`` builds the whole ``nginx.conf`` from a routing table (pure functions), ``accesslog``
turns nginx's JSON-lines access log into per-revision counters, ``procfs`` finds the master's
workers and their upstream connections, and ``adapter.NginxRouter`` is the ``core.ports.Router``
the registry hands listeners with ``router.kind: nginx`` to.
"""
