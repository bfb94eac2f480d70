"""A static picture of a live widget, for readers without a kernel (the HTML report, nbconvert, GitHub).

Models no kernel file. A widget view needs a running kernel; what a
notebook saves for it is one line of ``text/plain``. :func:`snapshot_box`
makes the ipywidgets box a viewer displays carry a second representation,
``text/html``: :func:`snapshot_html`, the controls' values as text and the
views (plot image, table, step text) as they were when the cell ran.
JupyterLab shows the live widget (its renderer ranks first); the report
drops the widget view and keeps this snapshot.
"""

from __future__ import annotations

import base64
import html

from workbench.base.units import human_count

__all__ = ["snapshot_box", "snapshot_html"]

_CSS = ("<style>.wb-snap{border:1px solid #ccc;border-radius:3px;padding:.4em .6em;margin:.3em 0}"
        ".wb-snap .wb-ctls{font-size:.85em;color:#333;margin-bottom:.3em}"
        ".wb-snap .wb-ctl{display:inline-block;margin-right:1.2em;white-space:nowrap}"
        ".wb-snap .wb-ctl b{font-weight:600;color:#555}"
        ".wb-snap .wb-row{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start}"
        ".wb-snap img{max-width:100%;height:auto}.wb-snap pre{white-space:pre-wrap}"
        ".wb-snap .wb-note{font-size:.75em;color:#777;margin-top:.3em}</style>")


def _value_text(w) -> str | None:
    """The value of a control as a person reads it, or None for a widget that holds no value to show."""
    cls = type(w).__name__
    if cls in ("Button", "Play", "Image", "HTML", "HTMLMath", "Label", "Output") or not hasattr(w, "value"):
        return None
    v = w.value
    if cls == "SelectionRangeSlider":
        return f"{v[0]}–{v[1]}"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return human_count(v, 4)  # 2M, 337, not 2e+06
    if isinstance(v, (tuple, list)):
        return ", ".join(map(str, v)) or "(none)"
    if cls == "Textarea":
        return None  # shown as a block below the controls
    return str(v)


def _walk(w, controls: list, blocks: list) -> None:
    cls = type(w).__name__
    if hasattr(w, "children"):
        row_controls: list = []
        row_blocks: list = []
        for c in w.children:
            _walk(c, row_controls, row_blocks)
        controls += row_controls
        if cls == "HBox" and len(row_blocks) > 1:
            blocks.append("<div class='wb-row'>" + "".join(f"<div>{b}</div>" for b in row_blocks) + "</div>")
        else:
            blocks += row_blocks
        return
    if cls == "Image" and w.value:
        mime = {"svg+xml": "image/svg+xml", "png": "image/png", "jpeg": "image/jpeg"}.get(w.format, "image/png")
        blocks.append(f"<img alt='plot' src='data:{mime};base64,{base64.b64encode(w.value).decode()}'>")
    elif cls in ("HTML", "HTMLMath") and w.value:
        blocks.append(f"<div>{w.value}</div>")
    elif cls == "Textarea" and w.value:
        blocks.append(f"<div><b>{html.escape(w.description)}</b><pre>{html.escape(w.value)}</pre></div>")
    else:
        text = _value_text(w)
        if text is not None and getattr(w, "description", ""):
            controls.append(f"<span class='wb-ctl'><b>{html.escape(w.description)}</b> {html.escape(text)}</span>")


def snapshot_html(widget) -> str:
    """*widget* (an ipywidgets box) as static HTML: its controls' values, then its plots and views."""
    controls: list = []
    blocks: list = []
    _walk(widget, controls, blocks)
    return (_CSS + "<div class='wb-snap'><div class='wb-ctls'>" + "".join(controls) + "</div>"
            + "".join(blocks) + "<div class='wb-note'>a snapshot of the interactive view as the cell ran; "
            "open the notebook in JupyterLab to use its controls</div></div>")


_BOX = {}


def snapshot_box(children, **kwargs):
    """An ``ipywidgets.VBox`` of *children* whose saved output also holds :func:`snapshot_html`."""
    if "cls" not in _BOX:
        import ipywidgets  # start-up: about 0.3 s, only once a notebook shows a viewer

        class SnapshotVBox(ipywidgets.VBox):
            """A VBox that is saved with a static HTML picture of itself beside the live view."""

            def _repr_mimebundle_(self, **kw):
                data = super()._repr_mimebundle_(**kw)
                if isinstance(data, tuple):  # (data, metadata)
                    data[0]["text/html"] = snapshot_html(self)
                elif data is not None:
                    data["text/html"] = snapshot_html(self)
                return data

        _BOX["cls"] = SnapshotVBox
    return _BOX["cls"](children, **kwargs)
