"""The triton backend's generated source: the torch backend's class (same
modules, same ``state_dict``) and a subclass whose eval mode runs the Triton
kernels. The subclass carries the validated network as JSON (the output of
``incdsl ir --json``, spans left out) and runs the passes on it at import, so
the file needs incdsl, not the spec.
"""

from __future__ import annotations

import json

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


def triton_footer(net: ir.Network, kernels: tuple[str, ...], base: str) -> str:
    """The code after the torch backend's source: a subclass of its class ``base`` whose eval
    mode runs the Triton kernels. The names this binds are kept free by the torch code generator."""
    return "\n".join(
        [
            "",
            "",
            "# --- the triton backend: eval mode through incdsl's Triton kernels ---",
            "",
            "import json  # noqa: E402",
            "import pathlib  # noqa: E402",
            "",
            "from incdsl.compiler.pipeline import passed_for_triton  # noqa: E402",
            "from incdsl.compiler.triton.module import TritonEval  # noqa: E402",
            "",
            f"NETWORK = json.loads({_triple_quoted(_compact(net))})",
            "",
            "",
            f"class {base}Triton(TritonEval, {base}):",
            f'    """{base} whose eval mode runs the Triton kernels; training mode is {base}\'s."""',
            "",
            f"    def __init__(self, kernels: tuple[str, ...] = {kernels!r}, cuda_graphs: bool = True, autotune: bool = False) -> None:",
            "        super().__init__()",
            "        # kernels compiled ahead of time for a GPU (incdsl compile --target) sit beside this file",
            "        precompiled = pathlib.Path(__file__).with_name('kernels')",
            "        self.setup_triton(",
            "            passed_for_triton(NETWORK, kernels), kernels, cuda_graphs, autotune,",
            "            precompiled if (precompiled / 'manifest.json').exists() else None,",
            "        )",
            "",
        ]
    )
