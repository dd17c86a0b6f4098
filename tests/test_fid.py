"""FID's Inception-v3 (specs/compat/fid_inception_v3.inc) against pytorch-fid's own network.

pytorch-fid builds its network by patching torchvision's Inception-v3 and then loading
its weights file from a URL; here its loader is handed our (random) state_dict instead,
so nothing is downloaded and pytorch-fid's own strict load checks the keys. Both ways
then load each other's state_dict with strict=True, and the four feature blocks FID
reads and the logits agree within 1e-5, on the torch backend and (features) the fused
one; the Triton backend's features are checked in the interpreter at a small input.
"""

from __future__ import annotations

import pytest
import torch
from conftest import randomise

import incdsl

pytorch_fid = pytest.importorskip("pytorch_fid.inception")

SPEC = "compat/fid_inception_v3"
#: pytorch-fid's output blocks 0-3 (64, 192, 768 and 2048 channels): what each one ends with.
FEATURES = ["maxpool1", "maxpool2", "Mixed_6e", "avgpool"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def models():
    """(ours, pytorch-fid's Inception, pytorch-fid's InceptionV3 feature wrapper), same weights."""
    ours = randomise(incdsl.compile(SPEC), seed=0)
    weights = ours.state_dict()
    patch = pytest.MonkeyPatch()
    patch.setattr(pytorch_fid, "load_state_dict_from_url", lambda *args, **kwargs: weights)
    try:
        inception = pytorch_fid.fid_inception_v3().eval()  # loads our state_dict with strict=True
        wrapper = pytorch_fid.InceptionV3([0, 1, 2, 3], resize_input=False, normalize_input=False).eval()
    finally:
        patch.undo()
    return ours, inception, wrapper


@pytest.fixture(scope="module")
def image():
    return torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_the_spec_checks_and_has_pytorch_fids_parameters(models, cli):
    ours, inception, _ = models
    assert cli("check", SPEC)[0] == 0
    net = incdsl.load(SPEC)
    assert net.node(net.logits).shape == (1008, 1, 1)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in inception.parameters())


def test_pytorch_fids_state_dict_loads_strictly_without_renaming(models):
    ours, inception, _ = models
    fresh = incdsl.compile(SPEC)
    fresh.load_state_dict(inception.state_dict(), strict=True)
    assert list(fresh.state_dict()) == list(ours.state_dict())
    assert sorted(inception.state_dict()) == sorted(ours.state_dict())


def test_the_four_feature_blocks_and_the_logits_equal_pytorch_fids(models, image):
    ours, inception, wrapper = models
    features = incdsl.compile(SPEC, features=FEATURES)
    features.load_state_dict(ours.state_dict(), strict=True)
    features.eval()
    with torch.no_grad():
        expected = wrapper(image)
        got = features(image)
        logits, their_logits = ours(image), inception(image)
    assert [got[name].shape[1] for name in FEATURES] == [64, 192, 768, 2048]
    for name, theirs in zip(FEATURES, expected, strict=True):
        assert (got[name] - theirs).abs().max().item() <= TOLERANCE, name
    diff = (logits - their_logits).abs().max().item()
    print(f"FID Inception vs pytorch-fid, batch 2 at 299x299: logits max-abs {diff:.1e}, features "
          + ", ".join(f"{n} {(got[n] - t).abs().max().item():.1e}" for n, t in zip(FEATURES, expected, strict=True)))
    assert diff <= TOLERANCE


def test_the_fused_path_gives_the_same_features(models, image):
    ours, _, wrapper = models
    fused = incdsl.compile(SPEC, features=FEATURES, fuse=True)
    fused.load_state_dict(ours.state_dict(), strict=True)
    fused.eval()
    with torch.no_grad():
        expected, got = wrapper(image), fused(image)
    for name, theirs in zip(FEATURES, expected, strict=True):
        assert (got[name] - theirs).abs().max().item() <= TOLERANCE, name


def test_the_triton_backend_gives_the_same_features():
    """In Triton's interpreter without a GPU, at 75×75 (the smallest input Inception-v3 takes)."""
    pytest.importorskip("triton")
    net = incdsl.load(SPEC, input="3x75x75")
    reference = randomise(incdsl.compile(net, features=FEATURES), seed=0)
    model = incdsl.compile(net, features=FEATURES, backend="triton")
    model.load_state_dict(reference.state_dict(), strict=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reference.to(device).eval()
    model.to(device).eval()
    x = torch.rand(1, 3, 75, 75, generator=torch.Generator().manual_seed(2)).to(device) * 2 - 1
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert list(got) == FEATURES
    for name in FEATURES:
        assert (got[name] - expected[name]).abs().max().item() <= 1e-4, name
