"""``Allow`` on automatic OPTIONS answers lists every method of the path.

Litestar makes a path's OPTIONS handler when the path's first handler is registered and binds it
to that first route; handlers registered later for the same path (``GET /v1/keys`` after
``POST /v1/keys``) build a new route but keep that handler, so ``Allow`` named only the first
method. :func:`fix_options_allow` points each such handler at its path's final route.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute


def fix_options_allow(app: Litestar) -> None:
    """Bind every automatic OPTIONS handler of ``app`` to the route it answers for."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            fn = handler.fn
            if handler.http_methods != {"OPTIONS"} or fn.__name__ != "options_handler":
                continue
            for cell in fn.__closure__ or ():
                if isinstance(cell.cell_contents, HTTPRoute):
                    cell.cell_contents = route
