"""The browser's side of ipywidgets, for the kernel tests: the comm messages Colab's front end sends
when a learner moves a slider, types, clicks or uploads a file, handed to the widget's comm in the
kernel exactly as ipykernel hands over a message that arrived from the browser (buffers as memoryviews,
as ZMQ delivers them). Written for the ipywidgets 7.7.1 protocol (Colab's)."""

from __future__ import annotations

import uuid


def _deliver(widget, data: dict, buffers=()) -> None:
    msg = {"header": {"msg_id": uuid.uuid4().hex, "msg_type": "comm_msg", "session": "colab-frontend",
                      "username": "learner", "version": "5.3"},
           "parent_header": {}, "metadata": {},
           "content": {"comm_id": widget.comm.comm_id, "data": data},
           "buffers": [memoryview(b) for b in buffers]}
    widget.comm.handle_msg(msg)


def update(widget, **state) -> None:
    """The learner changed these properties in the browser (a slider dragged, text typed, an option picked)."""
    _deliver(widget, {"method": "update", "state": state, "buffer_paths": []})


def click(button) -> None:
    _deliver(button, {"method": "custom", "content": {"event": "click"}})


def upload(widget, name: str, content: bytes, mime: str = "image/png", last_modified: int = 1_700_000_000_000):
    """A file chosen in FileUpload's dialog, sent as ipywidgets 7.7.1's front end sends it: metadata and
    data (the bytes as a binary buffer) and the counter that makes the kernel rebuild `value`."""
    meta = {"name": name, "type": mime, "size": len(content), "lastModified": last_modified}
    state = {"metadata": [meta], "data": [None], "_counter": widget._counter + 1}
    _deliver(widget, {"method": "update", "state": state, "buffer_paths": [["data", 0]]}, [content])
