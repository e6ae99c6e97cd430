"""The PyTorch flavor: a whole ``torch.nn.Module`` (architecture and weights).

The module is saved with ``torch.save`` using cloudpickle, so classes defined
in a notebook or script load elsewhere. ``predict`` turns the DataFrame into
a float32 tensor, runs the module in eval mode without gradients, and returns
a NumPy array (a 1-D one for a single output column).
"""

from __future__ import annotations

import io
from typing import Any

import cloudpickle

from loopml.registry.flavors import base_requirements

__all__ = ["FLAVOR", "TorchFlavor"]


class TorchFlavor:
    name = "torch"
    file_name = "model.pt"

    def matches(self, model: Any) -> bool:
        import torch

        return isinstance(model, torch.nn.Module)

    def dump(self, model: Any) -> bytes:
        import torch

        buf = io.BytesIO()
        torch.save(model, buf, pickle_module=cloudpickle)
        return buf.getvalue()

    def load(self, data: bytes) -> Any:
        import torch

        model = torch.load(io.BytesIO(data), weights_only=False)
        model.eval()
        return model

    def predict(self, model: Any, df: Any) -> Any:
        import numpy as np
        import torch

        x = torch.from_numpy(np.ascontiguousarray(df.to_numpy(dtype=np.float32)))
        with torch.no_grad():
            out = model(x)
        arr = out.detach().cpu().numpy()
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        return arr

    def requirements(self) -> dict[str, str]:
        return base_requirements("torch")


FLAVOR = TorchFlavor()
