"""Compiled networks behave like hand-written PyTorch models: each block instance is a module
of its block's class that the network calls, hooks see each module's own output and keep it,
`features=` gives named outputs (equal to hooks on the reference model), torchvision's
feature extractor and torchinfo work, and torch.export takes the whole network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import incdsl
from incdsl.compiler.torch.lower import BlockModule

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def v3_pair():
    """torchvision's Inception-v3 (random weights, random BN statistics) and ours with its weights."""
    torch.manual_seed(0)
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    ours = incdsl.compile("inception_v3")
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference.eval(), ours.eval()


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 299, 299, generator=torch.Generator().manual_seed(2))


def _hooked(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """Register hooks that keep each named module's output as the hook saw it (no copy)."""
    saved: dict[str, torch.Tensor] = {}
    for name in names:
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: saved.__setitem__(name, o))
    return saved


def test_each_block_instance_is_a_module_of_its_blocks_class(v3_pair):
    _, ours = v3_pair
    assert type(ours.Mixed_5b).__name__ == "InceptionA"
    assert type(ours.Mixed_5b) is type(ours.Mixed_5d) is not type(ours.Mixed_6b)
    assert isinstance(ours.Mixed_7c, BlockModule)


def test_hooks_on_blocks_fire_and_calling_a_block_gives_its_output(v3_pair, image):
    reference, ours = v3_pair
    names = ["Mixed_5b", "Mixed_6e", "Mixed_7c"]
    saved, theirs = _hooked(ours, names), _hooked(reference, names)
    with torch.no_grad():
        ours(image)
        reference(image)
    for name in names:
        assert torch.equal(saved[name], theirs[name]), name


def test_a_saved_hook_output_equals_the_modules_output_after_the_forward(v3_pair, image):
    """The conv's BN output is not overwritten by the ReLU after it (it was, with an in-place ReLU)."""
    _, ours = v3_pair
    names = ["Conv2d_1a_3x3.bn", "Conv2d_1a_3x3.conv", "Conv2d_1a_3x3", "Mixed_5b.branch1x1.bn", "Mixed_6a"]
    saved = _hooked(ours, names)
    copies = {}
    for name in names:
        ours.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: copies.__setitem__(name, o.clone()))
    with torch.no_grad():
        ours(image)
    for name in names:
        assert torch.equal(saved[name], copies[name]), name
    assert saved["Conv2d_1a_3x3.bn"].min() < 0 <= saved["Conv2d_1a_3x3"].min()


def test_a_block_called_alone_computes_what_the_network_computed(v3_pair, image):
    _, ours = v3_pair
    saved = _hooked(ours, ["Mixed_6d", "Mixed_6e"])
    with torch.no_grad():
        ours(image)
        alone = ours.Mixed_6e(saved["Mixed_6d"])
    assert torch.equal(alone, saved["Mixed_6e"])


FEATURES = ["maxpool1", "Mixed_5b", "Mixed_6e", "Mixed_7a.branch3x3_2", "avgpool", "fc"]


@pytest.mark.parametrize("fuse", [False, True])
def test_features_equal_hooks_on_the_reference(v3_pair, image, fuse):
    reference, ours = v3_pair
    theirs = _hooked(reference, FEATURES)
    model = incdsl.compile("inception_v3", features=FEATURES, fuse=fuse)
    model.load_state_dict(reference.state_dict(), strict=True)
    model.eval()
    with torch.no_grad():
        reference(image)
        got = model(image)
    assert list(got) == FEATURES
    tolerance = 1e-4 if fuse else 0.0
    for name in FEATURES:
        assert (got[name] - theirs[name].reshape(got[name].shape)).abs().max().item() <= tolerance, name


def test_features_by_row_label_and_unknown_names():
    net = incdsl.load("googlenet")
    assert [f.node for f in incdsl.with_features(net, ["4e"]).features] == ["inception_4e:concat"]
    with pytest.raises(ValueError, match="did you mean 'inception_4e'"):
        incdsl.with_features(net, ["inception_4f"])
    with pytest.raises(ValueError, match="twice"):
        incdsl.with_features(net, ["conv1", "conv1"])


def test_torchvision_feature_extractor_agrees_with_features(v3_pair, image):
    from torchvision.models.feature_extraction import create_feature_extractor

    _, ours = v3_pair
    extractor = create_feature_extractor(ours, {"Mixed_6e": "m6e", "maxpool2": "mp2"}, suppress_diff_warning=True)
    direct = incdsl.compile("inception_v3", features=["Mixed_6e", "maxpool2"])
    direct.load_state_dict(ours.state_dict())
    direct.eval()
    with torch.no_grad():
        got, expected = extractor(image), direct(image)
    assert torch.equal(got["m6e"], expected["Mixed_6e"]) and torch.equal(got["mp2"], expected["maxpool2"])


def test_torchinfo_lists_blocks_with_their_parameters(v3_pair):
    torchinfo = pytest.importorskip("torchinfo")
    _, ours = v3_pair
    summary = torchinfo.summary(ours, input_size=(1, 3, 299, 299), depth=1, verbose=0)
    rows = {layer.var_name: layer for layer in summary.summary_list if layer.depth == 1}
    expected = sum(p.numel() for p in ours.Mixed_6e.parameters())
    assert rows["Mixed_6e"].class_name == "InceptionC"
    assert rows["Mixed_6e"].num_params == expected > 0
    assert rows["Mixed_6e"].output_size == [1, 768, 17, 17]


def test_generated_source_has_a_class_per_block_and_returns_features(tmp_path, cli):
    out = tmp_path / "fid.py"
    code, _, err = cli("compile", "compat/fid_inception_v3", "--features", "maxpool1,Mixed_6e", "-o", str(out))
    assert code == 0, err
    source = out.read_text()
    assert "class FidInceptionA(nn.Module):" in source and "class InceptionB(nn.Module):" in source
    assert "return {'maxpool1': maxpool1, 'Mixed_6e': Mixed_6e}" in source
    assert cli("compile", "compat/fid_inception_v3", "--features", "Mixed_6z")[0] == 2


def test_torch_export_takes_the_whole_network_with_its_blocks():
    net = incdsl.load("compat/fid_inception_v3", input="3x75x75")
    model = incdsl.compile(net).eval()
    x = torch.randn(1, 3, 75, 75)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x), atol=1e-5)
