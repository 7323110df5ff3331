"""Standalone reproduction snippets for distribution findings (tensor-level ones come from conformance/repro.py,
through the failing record): the library's own classes built from the case's parameters, literally, and
its KL printed next to the closed form. Only NumPy and the library are imported."""

from __future__ import annotations

from ..distributions.libraries import Library
from ..repro import literal

_SETUP = {
    "torch": (
        "import torch\nimport torch.distributions as dist\n\nkl = dist.kl_divergence\n",
        "torch.as_tensor({array})",
        "torch.diag_embed({value})",
        "kl(p, q).numpy()",
    ),
    "tfp": (
        "import tensorflow as tf\nimport tensorflow_probability as tfp\n\ndist = tfp.distributions\n"
        "kl = dist.kl_divergence\n",
        "tf.constant({array})",
        "tf.linalg.diag({value})",
        "kl(p, q).numpy()",
    ),
}


def distribution_snippet(library: Library, entry: dict, check_id: str, message: str, expected) -> str | None:
    """The script, or None for a library without a template (the klconf command then reproduces it)."""
    setup = _SETUP.get(library.key)
    if setup is None:
        return None
    imports, array, diagonal, result = setup
    dtype = entry["dtypes"][0]
    lines = [f"# klconf reproduction of {check_id}", f"# {message[:300]}", "import numpy as np", imports]
    for side in ("p", "q"):
        params = entry[side]
        ctor = library.constructor(params["family"])
        assert ctor is not None, f"{library.name} reproduces a check on {params['family']}, which it does not cover"
        arguments = []
        for keyword, source in ctor.kwargs.items():
            if isinstance(source, tuple) and source[0] == "const":
                arguments.append(f"{keyword}={source[1]!r}")
                continue
            name = source[1] if isinstance(source, tuple) else source
            value = array.format(array=literal(_as(params[name], dtype)))
            arguments.append(f"{keyword}={diagonal.format(value=value) if isinstance(source, tuple) else value}")
        lines.append(f"{side} = dist.{ctor.cls}({', '.join(arguments)})")
    lines += [
        "",
        "np.set_printoptions(precision=17)",
        f"print('observed:', {result})",
        f"print('expected:', {list(expected)!r})  # the closed form at these parameters (mpmath, 50 digits)",
    ]
    return "\n".join(lines) + "\n"


def _as(values, dtype: str):
    import numpy as np

    return np.asarray(values, dtype=np.dtype(dtype))
