# Stand-in for huggingface_hub (see ../_standin.py): constants, exceptions and inert names only.
import os, re, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import _standin

__version__ = "0.26.5"
_home = os.path.join(tempfile.gettempdir(), "capforge-hf-standin-home")
_const = dict(HF_HUB_OFFLINE=True, HF_HUB_DISABLE_TELEMETRY=True, default_cache_path=_home + "/hub",
              HF_HUB_CACHE=_home + "/hub", HF_HOME=_home, HUGGINGFACE_CO_RESOLVE_ENDPOINT="http://offline",
              ENDPOINT="http://offline", HF_HUB_ENABLE_HF_TRANSFER=False, SAFETENSORS_SINGLE_FILE="model.safetensors",
              CONFIG_NAME="config.json", PYTORCH_WEIGHTS_NAME="pytorch_model.bin")
constants = _standin._Module("huggingface_hub.constants")
for k, v in _const.items():
    setattr(constants, k, v)
sys.modules["huggingface_hub.constants"] = constants
_CACHED_NO_EXIST = object()
file_download = _standin._Module("huggingface_hub.file_download")
file_download.REGEX_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
sys.modules["huggingface_hub.file_download"] = file_download


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _standin._make(name)
