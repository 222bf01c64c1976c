"""Pure-Python stand-ins so that Hugging Face transformers 4.47 (a checkout's src/, not in this repo)
imports on Debian's torch 1.13 without huggingface_hub, tokenizers and safetensors, none of which the
model math uses (bench/repair/run: HF_STANDINS=this dir). Names that are not defined return inert
placeholders; anything that would download or tokenize raises. The *.dist-info folders give
transformers' version checks the versions it requires. hf_compat.patch() stubs the one generate()
call that imports torch.distributed.fsdp (broken on torch 1.13). Our own code, nothing fetched."""
import importlib.abc
import importlib.machinery
import sys
import types


class _Placeholder:
    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        raise RuntimeError("stand-in: not available offline")

    def __getattr__(self, name):
        return _Placeholder()


def _make(name):
    # exception names must be exception classes; others: a subclassable callable
    if name.endswith(("Error", "Exception", "Warning")) or name in ("OfflineModeIsEnabled",):
        return type(name, (Exception,), {})
    if name[:1].isupper():
        return type(name, (_Placeholder,), {})
    def f(*a, **k):
        raise RuntimeError(f"stand-in {name}: not available offline")
    f.__name__ = name
    return f


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        v = _make(name)
        setattr(self, name, v)
        return v


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots, presets):
        self.roots, self.presets = roots, presets

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _Module(spec.name)
        m.__path__ = []
        for k, v in self.presets.get(spec.name, {}).items():
            setattr(m, k, v)
        return m

    def exec_module(self, module):
        pass


def install(roots, presets):
    sys.meta_path.insert(0, _Finder(roots, presets))
