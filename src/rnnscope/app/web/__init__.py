"""The web explorer (`rnnscope serve`): a FastAPI app over rnnscope.app.explorer, with plotly.js from the plotly package.

serve(host, port, open_browser) runs it until Ctrl-C (rnnscope serve); create_app() is the app itself:

    >>> from rnnscope.app.web import create_app
    >>> create_app().title
    'rnnscope explorer'
"""

from .server import create_app, serve

__all__ = ["create_app", "serve"]
