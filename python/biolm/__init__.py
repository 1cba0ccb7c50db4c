"""libbiolm from Python: federation sites with numpy parameters (docs/federated.md, "Python").

    import biolm
    site = biolm.Site("examples/configs/federated_ner_demo.yaml", "site_a")
    params = site.get_parameters()          # {name: float32 numpy array}: the exchanged tensors
    site.set_parameters(params)             # e.g. the server's aggregate
    info = site.train(round=1)              # local steps; {"n_examples", "train_loss", "steps"}
    metrics = site.evaluate()               # on data.dev: {"f1": ..., ...}

biolm links the LibTorch it was built with (Debian's 1.13 on dev machines). A pip `torch` in the
same process loads a second LibTorch: measured with torch 2.15, `import torch; import biolm`
aborts (std::system_error) and `import biolm; import torch` segfaults. So importing biolm after
torch, or torch after biolm, raises ImportError instead of crashing.
"""
import importlib.abc
import sys

if "torch" in sys.modules:
    raise ImportError("biolm cannot share a process with a pip `torch` (two LibTorch builds crash); "
                      "import biolm in a process that does not import torch")


class _NoTorch(importlib.abc.MetaPathFinder):
    """Refuses `import torch` once biolm is loaded (see the module docstring)."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torch" or fullname.startswith("torch."):
            raise ImportError("torch cannot be imported into a process that has imported biolm "
                              "(two LibTorch builds crash); use a separate process")
        return None


sys.meta_path.insert(0, _NoTorch())

from ._core import CheckpointError, ConfigError, DataError, Error, Site, set_log_level, version  # noqa: E402

__all__ = ["Site", "version", "set_log_level", "Error", "ConfigError", "DataError", "CheckpointError"]
