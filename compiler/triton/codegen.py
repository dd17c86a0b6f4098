"""The triton backend's generated source: the torch backend's class (same
modules, same ``state_dict``) and a subclass whose eval mode runs the Triton
kernels. The subclass carries the validated network as JSON (the output of
``incdsl ir --json``, spans left out) and runs the passes on it at import, so
the file needs incdsl, not the spec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from incdsl import ir


def _compact(net: ir.Network) -> str:
    """``net`` as JSON, one node a line, without spans and default values."""
    head = {"name": net.name, "input_shape": list(net.input_shape), "output": net.output}
    head["aux"] = [h.model_dump(mode="json") for h in net.aux]
    if net.features:
        head["features"] = [f.model_dump(mode="json") for f in net.features]
    nodes = [
        {
            **n.model_dump(mode="json", exclude_defaults=True, exclude={"span", "origin", "attrs"}),
            "attrs": {"op": n.op, **n.attrs.model_dump(mode="json", exclude_defaults=True)},
        }
        for n in net.nodes
    ]
    lines = ",\n".join(f"    {json.dumps(n, separators=(',', ':'))}" for n in nodes)
    return f"{json.dumps(head, separators=(',', ':'))[:-1]},\"nodes\":[\n{lines}\n]}}"


def _triple_quoted(text: str) -> str:
    """``text`` as a triple-quoted Python literal that reads back as ``text`` whatever it holds
    (json escapes a non-ASCII module name with a backslash; backslashes and quotes are escaped here)."""
    return "'''" + text.replace("\\", "\\\\").replace("'", "\\'") + "'''"


def triton_footer(passed: ir.Network, kernels: tuple[str, ...], base: str, carried: Mapping[str, Any] | None = None) -> str:
    """The code after the torch backend's source: a subclass of its class ``base`` whose eval
    mode runs the Triton kernels ``kernels``. The names this binds are kept free by the torch
    code generator. It embeds ``passed``, the network after the triton backend's passes for
    ``kernels``, so that building the module runs none (for Inception-ResNet-v2 the passes
    take ~40 ms, reading their result back ~3: best of 7 on the 2-core dev machine).

    ``carried`` (``incdsl compile --target``: the Triton version, the target and each kernel
    folder's files with their sha256) is embedded: the module then uses the kernels in the
    ``kernels`` folder beside it that are exactly these, and nothing else
    (:mod:`incdsl.compiler.triton.precompiled`). Without it the module looks for no kernels."""
    lines = [
        "",
        "",
        "# --- the triton backend: eval mode through incdsl's Triton kernels ---",
        "",
        "import json  # noqa: E402",
        *(["import pathlib  # noqa: E402"] if carried else []),
        "",
        "from incdsl.compiler.triton.module import TritonEval  # noqa: E402",
        "from incdsl.ir import network_from_json  # noqa: E402",
        "",
        "#: The network after the triton backend's passes for its kernels.",
        f"PASSED = json.loads({_triple_quoted(_compact(passed))})",
    ]
    setup = f"network_from_json(PASSED), {kernels!r}, cuda_graphs, autotune"
    if carried:
        lines += [
            "",
            "#: The kernels compiled ahead of time with this module (incdsl compile --target), by Triton's",
            "#: cache key: each file and its sha256. The eval mode uses those in ./kernels that match, no others.",
            f"KERNELS = json.loads({_triple_quoted(json.dumps(carried, indent=1, sort_keys=True))})",
        ]
        setup += ", carried=(pathlib.Path(__file__).with_name('kernels'), KERNELS)"
    return "\n".join(
        [
            *lines,
            "",
            "",
            f"class {base}Triton(TritonEval, {base}):",
            f'    """{base} whose eval mode runs the Triton kernels; training mode is {base}\'s."""',
            "",
            "    def __init__(self, cuda_graphs: bool = True, autotune: bool = False) -> None:",
            "        super().__init__()",
            f"        self.setup_triton({setup})",
            "",
        ]
    )
