"""Colab's output helpers: each call is shown as HTML a test can read back."""

import html

from IPython.display import display

from . import _widgets

calls = []


def serve_kernel_port_as_iframe(
    port, path="/", width="100%", height="400", cache_in_notebook=False
):
    # Colab's own version asks its front end for a proxied address of the kernel's port;
    # here the kernel's port is reached directly.
    calls.append(("serve_kernel_port_as_iframe", port, path))
    src = html.escape(f"http://127.0.0.1:{port}{path}")
    _html(
        f'<iframe data-standin="colab-port-proxy" src="{src}" width="{width}" '
        f'height="{height}"></iframe>'
    )


def enable_custom_widget_manager():
    calls.append(("enable_custom_widget_manager",))
    _widgets._installed_url = "https://ssl.gstatic.com/colaboratory-static/widgets/standin.js"
    _html('<span data-standin="colab-custom-widget-manager"></span>')


def _html(text):
    display({"text/html": text}, raw=True)
