"""The SaSwap web app (Gradio): ``saswap app``, or :func:`launch` / :func:`build_app` from Python.

Importing this package imports gradio (install it with ``pip install 'saswap[app]'``).
"""

from saswap.app.server import AppSettings, RunningApp, SaSwapApp, build_app, launch

__all__ = ["AppSettings", "RunningApp", "SaSwapApp", "build_app", "launch"]
