def _deprecate_method(*a, **k):
    return lambda f: f
