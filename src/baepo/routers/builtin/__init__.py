"""The built-in router: an HTTP/1.1 reverse proxy process for one app+environment.

The proxy runs as its own long-lived process (``python -m baepo.routers.builtin``) so that it
keeps serving while the controller restarts; the controller drives it through
``adapter.BuiltinRouter`` over an admin unix socket. That process is a ``master`` holding the
listening sockets and a ``worker`` it forks on them and replaces at once if it dies. This
package ``__init__`` stays empty so that starting the proxy imports nothing but the stdlib,
httptools and its sibling modules.
"""
