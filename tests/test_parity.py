"""The reference-compatible specs against torchvision's and timm's models.

Each reference is built once per module with random weights (nothing is
downloaded), re-initialised so that activations stay of order one through the
whole depth, with batch norm's running statistics and affine parameters
randomised so that the BN conventions (eps 1e-3, where BN sits, bias-free
convs) are really exercised. Parity means: the same state_dict keys, a strict
load, and eval logits within 1e-4; and every conv and block output of the
spec has the shape the reference's module of that name produces.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import randomise
from torch import nn

import incdsl

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

TOLERANCE = 1e-4
BATCH = 2


REFERENCES = {
    "inception_v3": lambda: torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True),
    # the pretrained form: torchvision sets transform_input=True whenever weights are requested
    "compat/torchvision_inception_v3_pretrained": lambda: torchvision.models.inception_v3(
        weights=None, aux_logits=True, init_weights=True, transform_input=True
    ),
    "inception_v4": lambda: timm.create_model("inception_v4", pretrained=False),
    "inception_resnet_v2": lambda: timm.create_model("inception_resnet_v2", pretrained=False),
    "xception": lambda: timm.create_model("legacy_xception", pretrained=False),
}


@pytest.fixture(scope="module", params=list(REFERENCES))
def pair(request):
    """(spec name, reference model, our model with the reference's weights loaded strictly, one input)."""
    name = request.param
    torch.manual_seed(0)
    reference = randomise(REFERENCES[name](), seed=1)
    ours = incdsl.compile(name).eval()
    assert sorted(ours.state_dict()) == sorted(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(BATCH, 3, 299, 299, generator=torch.Generator().manual_seed(2))
    return name, reference, ours, x


def _module_outputs(model: nn.Module, names: set[str], x: torch.Tensor) -> tuple[torch.Tensor, dict[str, tuple]]:
    shapes: dict[str, tuple] = {}

    def record(name: str):
        def hook(_module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
            shapes[name] = tuple(out.shape[1:])

        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in model.named_modules() if name in names]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return logits, shapes


def test_eval_logits_and_shapes_match_the_reference(pair):
    name, reference, ours, x = pair
    net = incdsl.load(name)
    # every conv by its own name; every block by the last node in its scope (its concat or residual add)
    expected: dict[str, tuple] = {}
    for node in net.main_nodes():
        if node.op == "conv" or ":" in node.name:
            expected[node.name.split(":")[0]] = node.shape
    logits, shapes = _module_outputs(reference, set(expected), x)
    assert len(shapes) > 80  # Xception's 74 convs and 12 blocks; the Inceptions' more
    assert {k: expected[k] for k in shapes} == shapes
    with torch.no_grad():
        ours_logits = ours(x)
    assert ours_logits.shape == logits.shape == (BATCH, 1000)
    assert 0.1 < logits.abs().max() < 1e3, "activations should stay of order one"
    diff = (ours_logits - logits).abs().max().item()
    print(f"\n{name}: {len(shapes)} module shapes equal; max |logits| {logits.abs().max():.3g}, max |Δ| {diff:.3g}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize("pair", ["inception_v3", "compat/torchvision_inception_v3_pretrained"], indirect=True)
def test_inception_v3_aux_head_matches_in_training(pair):
    name, reference, ours, x = pair
    # copies: training mode updates BN's running statistics
    reference, ours = copy.deepcopy(reference).train(), copy.deepcopy(ours).train()
    for m in [*reference.modules(), *ours.modules()]:
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    with torch.no_grad():
        want, got = reference(x), ours(x)
    assert [head.name for head in got.aux] == ["AuxLogits"]
    diffs = (got.logits - want.logits).abs().max().item(), (got.aux[0].logits - want.aux_logits).abs().max().item()
    print(f"\n{name} training: max |Δ| logits {diffs[0]:.3g}, aux logits {diffs[1]:.3g}")
    assert max(diffs) <= TOLERANCE


@pytest.mark.parametrize("pair", ["xception"], indirect=True)
def test_xception_matches_in_training(pair):
    _name, reference, ours, x = pair
    reference, ours = copy.deepcopy(reference).train(), copy.deepcopy(ours).train()
    with torch.no_grad():
        want, got = reference(x), ours(x)
    diff = ((got - want).abs().max() / want.abs().max()).item()
    print(f"\nxception training: max |Δ| / max |logits| {diff:.3g}")
    assert diff <= 1e-5
    # training updated both networks' batch-norm statistics alike
    for (key, a), b in zip(ours.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), key


@pytest.mark.parametrize("pair", ["xception"], indirect=True)
def test_xceptions_fused_eval_folds_every_batch_norm_and_agrees(pair):
    _name, reference, _ours, x = pair
    fused = incdsl.compile("xception", fuse=True)
    fused.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        want, got = reference.eval()(x), fused.eval()(x)
    diff = ((got - want).abs().max() / want.abs().max()).item()
    print(f"\nxception fused eval: max |Δ| / max |logits| {diff:.3g}")
    assert diff <= 1e-5
