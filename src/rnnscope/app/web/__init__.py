"""The web explorer (`rnnscope serve`): a FastAPI app over rnnscope.app.explorer, with plotly.js from the plotly package.

    >>> from rnnscope.app.web import create_app, serve     # doctest: +SKIP
    >>> serve("127.0.0.1", 8765, open_browser=True)     # doctest: +SKIP
"""

from .server import create_app, serve

__all__ = ["create_app", "serve"]
