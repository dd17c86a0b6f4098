"""Property tests: random valid networks built from the language's constructs parse,
validate, and lower to modules whose every layer produces the shape the IR inferred;
`fmt` leaves each of them the same network; the inference passes keep them valid and
the fused torch and Triton backends compute what the plain torch backend does.

The generator tracks channels and sizes as it writes, so every spec it makes is valid;
whitespace and comments are sprinkled at random to exercise the formatter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import incdsl
from incdsl.fmt import format_spec, significant_tokens

#: Every way the grammar spells a float, with and without exponents (`1e-5` once came out of `fmt` as `1e - 5`).
EPS_SPELLINGS = ("0.001", "1e-3", "1E-3", ".001", "1e-5", "0.1e-2", "1e+0", "1.")


@dataclass
class _Writer:
    draw: st.DrawFn
    channels: int
    size: int
    blocks: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    n_blocks: int = 0

    def space(self) -> str:
        return self.draw(st.sampled_from([" ", " ", "  ", "\t"]))

    def comment(self) -> str:
        return self.draw(st.sampled_from(["", "", "", "  # 주석", "  # note: x -> y"]))

    def conv(self, width: int | None = None, odd: bool = True) -> str:
        kernel = self.draw(st.sampled_from(["1x1", "3x3", "1x3", "3x1", "5x5", "1x7"] if odd else ["1x1"]))
        width = width or self.draw(st.integers(2, 24))
        return f"conv{self.space()}{kernel}{self.space()}{width}"

    def branch(self, depth: int) -> tuple[str, int, list[str]]:
        """One concat branch: its text (one line, or a nested concat) and its channels."""
        kind = self.draw(st.sampled_from(["chain", "chain", "pool", "split"] if depth < 2 else ["chain", "pool"]))
        if kind == "pool":
            width = self.draw(st.integers(2, 16))
            pool = self.draw(st.sampled_from(["maxpool", "avgpool"]))
            return f"{pool} 3x3/1 same -> conv 1x1 {width}", width, []
        n = self.draw(st.integers(1, 3))
        widths = [self.draw(st.integers(2, 16)) for _ in range(n)]
        chain = " -> ".join(self.conv(w) for w in widths)
        if kind == "chain":
            return chain, widths[-1], []
        subs = [self.branch(depth + 1) for _ in range(self.draw(st.integers(2, 3)))]
        lines = []
        for text, _, nested in subs:
            lines.append("  " + text)
            lines.extend("  " + line for line in nested)
        return chain + " -> concat:", sum(w for _, w, _ in subs), lines

    def concat(self, indent: str) -> tuple[list[str], int]:
        lines = [f"{indent}concat:"]
        total = 0
        for _ in range(self.draw(st.integers(2, 4))):
            text, width, nested = self.branch(0)
            lines.append(f"{indent}  {text}{self.comment()}")
            lines.extend(f"{indent}  {line}" for line in nested)
            total += width
        return lines, total

    def block(self) -> None:
        self.n_blocks += 1
        name = f"blk{self.n_blocks}"
        residual = self.draw(st.booleans())
        if residual:
            lines, _ = self.concat("    ")
            scale = self.draw(st.sampled_from(["0.1", "0.17", "1.0", "1.7e-1", "1E0", ".2"]))
            act = self.draw(st.sampled_from(["", " linear"]))
            self.blocks += [f"block {name}(scale={scale}):", f"  residual scale=scale{act}:", *lines,
                            f"    conv 1x1 {self.channels} linear bias"]
            out = self.channels
        else:
            lines, out = self.concat("  ")
            self.blocks += [f"block {name}():", *lines]
        call = self.draw(st.sampled_from(["call", "repeat", "table"] if residual else ["call", "table"]))
        if call == "repeat":
            self.body.append(f"{self.draw(st.integers(2, 3))} x {name}()")
        elif call == "table":
            self.body.append(f'{name}  "scale"' if residual else f"{name}")
            if residual:
                self.body += [f"  r{i}  0.{i + 1}" for i in range(self.draw(st.integers(1, 3)))]
            else:
                self.body[-1] = f"{name}()"
        else:
            self.body.append(f"{name}() as {name}_m")
            self.names.append(f"{name}_m")
        self.channels = out

    def layer(self) -> None:
        kind = self.draw(st.sampled_from(["conv", "pool", "down"]))
        if kind == "conv":
            width = self.draw(st.integers(2, 24))
            options = st.sampled_from(["", " linear", *(f" bn eps={eps}" for eps in EPS_SPELLINGS)])
            self.body.append(self.conv(width) + self.draw(options))
            self.channels = width
        elif kind == "pool":
            self.body.append(self.draw(st.sampled_from(["maxpool 3x3/1 same", "avgpool 3x3/1 same count_include_pad=false"])))
        elif self.size >= 8:
            self.body.append(self.draw(st.sampled_from(["maxpool 3x3/2", "maxpool 2x2/2 ceil", "avgpool 3x3/2 V"])))
            self.size = (self.size - 3) // 2 + 1 if "3x3" in self.body[-1] else -(-self.size // 2)


@st.composite
def networks(draw: st.DrawFn) -> str:
    channels, size = draw(st.sampled_from([3, 8])), draw(st.sampled_from([12, 16, 24]))
    writer = _Writer(draw, channels, size)
    for _ in range(draw(st.integers(1, 5))):
        writer.block() if draw(st.booleans()) else writer.layer()
    head = [f"network random{writer.comment()}", f"input {channels}x{size}x{size}"]
    tail = ["global_avgpool -> linear 10"]
    if writer.names:
        tail += [f"aux after {writer.names[0]} weight=0.3:", "  global_avgpool -> linear 10"]
    return "\n".join([*head, *writer.blocks, *writer.body, *tail]) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=networks())
def test_random_networks_lower_to_the_inferred_shapes(text):
    net = incdsl.loads(text, file="random.inc")
    model = incdsl.compile(net).eval()
    seen: dict[str, tuple[int, ...]] = {}
    for node in net.nodes:
        if node.has_module:
            module = model.get_submodule(node.name)
            module.register_forward_hook(lambda m, i, o, name=node.name: seen.__setitem__(name, tuple(o.shape[1:])))
    with torch.no_grad():
        out = model(torch.randn(2, *net.input_shape))
    assert out.shape == (2, 10)
    aux_nodes = {n for h in net.aux for n in net.graph if net.node(n).row == h.row}
    for node in net.nodes:
        if node.has_module and node.name not in aux_nodes:
            expected = node.shape if node.op != "linear" else (node.shape[0],)
            assert seen[node.name] == expected, (node.name, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=networks())
def test_fmt_round_trips_random_networks(text, same_network):
    """fmt changes layout only: the same tokens, the same IR, and formatting twice changes nothing."""
    formatted = format_spec(text, "random.inc")
    assert significant_tokens(formatted) == significant_tokens(text)
    assert same_network(text, formatted, "random.inc")
    assert format_spec(formatted, "random.inc") == formatted


def _randomised(net: incdsl.Network) -> torch.nn.Module:
    model = incdsl.compile(net)
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=networks())
def test_inference_passes_keep_random_networks(text):
    """Every pass keeps the IR's invariants, and the fused torch eval computes the reference's logits."""
    from incdsl.compiler.pipeline import TRITON_KERNELS, inference_passes, run_passes

    net = incdsl.loads(text, file="random.inc")
    run_passes(net, inference_passes("triton", TRITON_KERNELS), verify=True)
    reference = _randomised(net)
    fused = incdsl.compile(net, fuse=True).eval()
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        assert (fused(x) - reference(x)).abs().max().item() < 1e-4, text


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=networks())
def test_triton_backend_on_random_networks(text):
    """Every Triton kernel on random topologies (nested concats, residual blocks, pools) equals the torch backend."""
    net = incdsl.loads(text, file="random.inc")
    reference = _randomised(net)
    model = incdsl.compile(net, backend="triton", kernels="all").eval()
    model.load_state_dict(reference.state_dict())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reference.to(device)
    model.to(device)
    x = torch.randn(1, *net.input_shape, device=device)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() < 1e-4, text
