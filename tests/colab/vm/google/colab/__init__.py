"""A stand-in for Colab's `google.colab` package (tests only).

`google` has no __init__.py here, as on Colab: it is a namespace package, so this module sits beside
`google.protobuf` (which tensorboard imports) instead of hiding it.
"""

from . import drive  # noqa: F401

__all__ = ["drive"]
