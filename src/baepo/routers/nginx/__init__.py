"""The nginx router: baepo runs real nginx per listener and drives it by graceful reloads.

A front nginx on the app's address forwards to a back nginx that holds the routing table and
is reloaded on each change (docs/router-nginx.md). ``render`` builds both configurations from
a routing table (pure functions), ``accesslog`` turns the back's JSON-lines access log into
per-revision counters, ``procfs`` finds a master's workers and their upstream connections, and
``adapter.NginxRouter`` is the ``core.ports.Router`` the registry hands listeners with
``router.kind: nginx`` to.
"""
