"""Entry point of the router process: ``python -m baepo.routers.builtin`` (see ``server``)."""

from baepo.routers.builtin.server import main

raise SystemExit(main())
