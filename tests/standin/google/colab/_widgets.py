"""Where Colab notes the custom widget manager it installed (anywidget reads it)."""

_installed_url = None
