"""The triton backend's generated source: the torch backend's class (same
modules, same ``state_dict``) and a subclass whose eval mode runs the Triton
kernels. The subclass carries the validated network as JSON (the output of
``incdsl ir --json``, spans left out) and runs the passes on it at import, so
the file needs incdsl, not the spec.
"""

from __future__ import annotations

import json

from incdsl import ir

from ..torch.codegen import class_name


def _compact(net: ir.Network) -> str:
    data = net.to_json()
    data["rows"], data["tables"] = [], []
    for node in data["nodes"]:
        node["span"] = node["origin"] = None
    lines = ",\n".join(f"    {json.dumps(n, separators=(',', ':'))}" for n in data["nodes"])
    head = {k: v for k, v in data.items() if k != "nodes"}
    return f"{json.dumps(head, separators=(',', ':'))[:-1]},\"nodes\":[\n{lines}\n]}}"


def triton_footer(net: ir.Network, kernels: tuple[str, ...]) -> str:
    base = class_name(net.name)
    return "\n".join(
        [
            "",
            "",
            "# --- the triton backend: eval mode through incdsl's Triton kernels ---",
            "",
            "import json  # noqa: E402",
            "",
            "from incdsl.compiler.triton.module import TritonEval, passed_for_triton  # noqa: E402",
            "",
            f"NETWORK = json.loads(r'''{_compact(net)}''')",
            "",
            "",
            f"class {base}Triton(TritonEval, {base}):",
            f'    """{base} whose eval mode runs the Triton kernels; training mode is {base}\'s."""',
            "",
            f"    def __init__(self, kernels: tuple[str, ...] = {kernels!r}) -> None:",
            "        super().__init__()",
            "        self.setup_triton(passed_for_triton(NETWORK, kernels), kernels)",
            "",
        ]
    )
