"""Widget panels that redraw a matplotlib figure, and still show it where widgets cannot run.

A :class:`PicturePanel` is an ``ipywidgets.VBox`` with an ``Output`` widget for its
figure. ``show(fig, text)`` puts a PNG of the figure there. The panel's display
bundle carries the same PNG next to the widget view, so places without a widget
frontend (nbval, nbconvert, a static render of the notebook) show the picture of
the current settings instead of an empty widget.
"""

import base64
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt

__all__ = ["PicturePanel", "png"]


def png(fig, dpi=80):
    """The figure as base64-encoded PNG (what a notebook stores); closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


class PicturePanel(widgets.VBox):
    """A VBox of controls plus ``self.output``, whose picture also goes into the display bundle.

    Subclasses build their controls, pass them to ``__init__`` and call ``show`` (or
    ``clear``) whenever a control changes; ``summary()`` is the panel's plain-text form.
    """

    def __init__(self, children, **kwargs):
        self.output = widgets.Output()
        self.picture = None
        super().__init__([*children, self.output], **kwargs)

    def show(self, fig, text):
        """Draw ``fig`` (then closed) in the output area; ``text`` is its plain-text alternative."""
        self.picture = png(fig)
        self.output.outputs = (
            {
                "output_type": "display_data",
                "data": {"image/png": self.picture, "text/plain": text},
                "metadata": {},
            },
        )

    def clear(self):
        """No picture (e.g. the settings are invalid)."""
        self.picture = None
        self.output.outputs = ()

    def summary(self):
        """One line of plain text describing the current settings (override it)."""
        return type(self).__name__

    def _repr_mimebundle_(self, **kwargs):
        """The widget view, plus the picture and plain text for places without widgets."""
        data = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = self.summary()
        if self.picture is not None:
            data["image/png"] = self.picture
        return data
