# stand-in (no dist-info: transformers sees tokenizers as unavailable; imports still resolve)
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import _standin
_standin.install(["tokenizers"], {})
__version__ = "0.20.3"


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _standin._make(name)
