from _standin import _make as __sm
def __getattr__(name):
    if name.startswith('__'): raise AttributeError(name)
    return __sm(name)
import hashlib as insecure_hashlib
def are_progress_bars_disabled(*a, **k):
    return True
def disable_progress_bars(*a, **k):
    pass
def enable_progress_bars(*a, **k):
    pass
