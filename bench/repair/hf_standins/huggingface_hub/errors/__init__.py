from _standin import _make as __sm
def __getattr__(name):
    if name.startswith('__'): raise AttributeError(name)
    return __sm(name)
