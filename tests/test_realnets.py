"""The language for networks as other people's PyTorch code writes them: standalone batch
norm (2-d and 1-d), batch norm after `linear`, `l2norm`, a naming rule for a layer's parts
(`parts=`), quoted module names, layer types, sizes and strides as block arguments. Each is
checked against a small reference written in plain PyTorch the way such code writes it:
the same state_dict keys, strict loads, the same outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import incdsl
from incdsl import SpecError, loads
from incdsl.fmt import format_spec

HEAD = "network t\ninput 3x16x16\n"


def _randomised(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5, generator=g)
                    m.bias.uniform_(-0.5, 0.5, generator=g)
    return model.eval()


def _same(spec: str, reference: nn.Module, shape=(2, 3, 16, 16)) -> None:
    """Our module loads the reference's state_dict strictly, and computes what it computes."""
    ours = incdsl.compile(loads(spec))
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(_randomised(reference).state_dict(), strict=True)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), reference(x), atol=1e-6)


class _EmbeddingHead(nn.Module):
    """facenet-pytorch's InceptionResnetV1 head: pool, dropout, linear without bias, BatchNorm1d, L2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.6)
        self.last_linear = nn.Linear(8, 4, bias=False)
        self.last_bn = nn.BatchNorm1d(4, eps=0.001)

    def forward(self, x):
        x = self.dropout(self.avgpool_1a(F.relu(self.conv(x))))
        return F.normalize(self.last_bn(self.last_linear(x.view(x.shape[0], -1))), p=2, dim=1)


def test_an_embedding_head_with_batch_norm_1d_and_l2norm():
    spec = HEAD + (
        "conv 3x3 8 bias as conv\nglobal_avgpool as avgpool_1a\ndropout 0.6 as dropout\n"
        "linear 4 nobias as last_linear\nbn eps=0.001 as last_bn\nl2norm\n"
    )
    _same(spec, _EmbeddingHead())
    model = incdsl.compile(loads(spec))
    assert isinstance(model.last_bn, nn.BatchNorm1d)
    out = model.eval()(torch.randn(3, 3, 16, 16))
    assert torch.allclose(out.norm(dim=1), torch.ones(3))


class _LinearBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn0 = nn.BatchNorm2d(3)
        self.fc = nn.Sequential(nn.Linear(3, 5, bias=False), nn.BatchNorm1d(5))

    def forward(self, x):
        return F.relu(self.fc(torch.flatten(self.bn0(self.pool(x)), 1)))


def test_batch_norm_after_pooling_and_as_a_linear_option():
    spec = HEAD + 'global_avgpool as pool\nbn as bn0\nlinear 5 bn relu parts="X.0 X.1" as fc\n'
    _same(spec, _LinearBN())
    net = loads(spec)
    assert net.node("fc").attrs.bias is False  # no bias under a batch norm, as for conv
    assert incdsl.compile(net).bn0.__class__ is nn.BatchNorm2d


class _Siblings(nn.Module):
    """BN-Inception as Caffe ports write it: the conv `X` and its batch norm `X_bn` side by side,
    module names such as `inception_3a_3x3_reduce`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1_7x7_s2 = nn.Conv2d(3, 8, 7, stride=2, padding=3)
        self.conv1_7x7_s2_bn = nn.BatchNorm2d(8, eps=1e-5)
        self.inception_3a_1x1 = nn.Conv2d(8, 4, 1)
        self.inception_3a_1x1_bn = nn.BatchNorm2d(4)
        self.inception_3a_3x3_reduce = nn.Conv2d(8, 4, 1)
        self.inception_3a_3x3_reduce_bn = nn.BatchNorm2d(4)
        self.inception_3a_3x3 = nn.Conv2d(4, 6, 3, padding=1)
        self.inception_3a_3x3_bn = nn.BatchNorm2d(6)

    def forward(self, x):
        x = F.relu(self.conv1_7x7_s2_bn(self.conv1_7x7_s2(x)))
        a = F.relu(self.inception_3a_1x1_bn(self.inception_3a_1x1(x)))
        b = F.relu(self.inception_3a_3x3_reduce_bn(self.inception_3a_3x3_reduce(x)))
        b = F.relu(self.inception_3a_3x3_bn(self.inception_3a_3x3(b)))
        return torch.cat([a, b], 1)


def test_sibling_parts_as_bn_inception_names_them():
    spec = HEAD + (
        'defaults:\n  conv bn bias parts="X X_bn"\n'
        "block inception(n1, red, n3, name):\n  concat:\n"
        "    conv 1x1 n1 as inception_3a_1x1\n"
        "    conv 1x1 red as inception_3a_3x3_reduce -> conv 3x3 n3 as inception_3a_3x3\n"
        "conv 7x7/2 8 as conv1_7x7_s2\n"
    )
    spec = spec.replace(", name)", ")").replace("block inception", "block b") + "b(4, 4, 6) as inception_3a\n"
    # the reference's layers sit at the top level, not in a block instance
    flat = HEAD + (
        'defaults:\n  conv bn bias parts="X X_bn"\n'
        "conv 7x7/2 8 as conv1_7x7_s2\nconcat:\n"
        "  conv 1x1 4 as inception_3a_1x1\n"
        "  conv 1x1 4 as inception_3a_3x3_reduce -> conv 3x3 6 as inception_3a_3x3\n"
    )
    _same(flat, _Siblings())
    assert [n for n, _ in incdsl.compile(loads(spec)).named_children()] == ["conv1_7x7_s2", "conv1_7x7_s2_bn", "inception_3a"]


@pytest.mark.parametrize(
    ("parts", "keys"),
    [
        ("", ["c.conv.weight", "c.bn.weight"]),
        ('parts="X.conv X.norm"', ["c.conv.weight", "c.norm.weight"]),
        ('parts="X.conv X.bn X.relu"', ["c.conv.weight", "c.bn.weight"]),
        ('parts="X X_bn"', ["c.weight", "c_bn.weight"]),
        ('parts="X_conv X_bn"', ["c_conv.weight", "c_bn.weight"]),
    ],
)
def test_each_layout_of_a_layers_parts(parts, keys):
    model = incdsl.compile(loads(HEAD + f"conv 3x3 4 bn {parts} as c\n"))
    assert [k for k in model.state_dict() if k.endswith(".weight")] == keys
    if "relu" in parts:
        assert isinstance(model.c.relu, nn.ReLU)


def test_parts_set_once_for_the_network_and_fused_eval_finds_them(randomise_bn):
    spec = HEAD + 'defaults:\n  conv bn parts="X X_bn"\nconcat:\n  conv 1x1 4\n  conv 1x1 4 -> conv 3x3 4\nglobal_avgpool -> linear 3\n'
    plain = incdsl.compile(loads(spec))
    randomise_bn(plain)
    fused = incdsl.compile(loads(spec), fuse=True)
    fused.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(plain.eval()(x), fused.eval()(x), atol=1e-5)


def test_layer_types_sizes_and_strides_as_block_arguments():
    spec = HEAD + (
        "block unit(k, s, pool):\n  pool 3x3/1 same -> conv k/s 4 -> conv 3x3/s 4\n"
        "unit(3x3, 2, maxpool) as a\n"
        'unit  "k"  "s"   "pool"\n  b   1x1    1  avgpool\n'
    )
    net = loads(spec)
    ops = {n.name: (n.op, getattr(n.attrs, "kernel", None), getattr(n.attrs, "stride", None)) for n in net.nodes}
    assert ops["a.maxpool1"][0] == "maxpool" and ops["unit_b.avgpool1"][0] == "avgpool"
    assert ops["a.conv1"][1:] == ((3, 3), (2, 2)) and ops["a.conv2"][2] == (2, 2)
    assert ops["unit_b.conv1"][1:] == ((1, 1), (1, 1))
    assert format_spec(spec) == spec


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ('conv 3x3 4 bn parts="X.conv X_bn" as c\n', "mixes children (X.name) and siblings", (3, 15)),
        ('conv 3x3 4 bn parts="Y.conv Y.bn"\n', "is not a part pattern", (3, 15)),
        ("conv 3x3 4 bn parts=X\n", "parts= takes a quoted pattern list", (3, 15)),
        ("block b(t):\n  t 3x3 4\nb(7)\n", "`7` is not a layer type or a block, and block `b` uses its parameter `t`", (5, 3)),
        ("block b(s):\n  conv 3x3/s 4\nb(0)\n", "the stride after `/` must be a whole number", (4, 12)),
        ("block b(k):\n  conv k/2 4\nb(3)\n", "`3` before `/` is not a window size", (4, 8)),
        ('conv 3x3 4 as "a.b"\n', "cannot name a module", (3, 12)),
        ("bn momentum=0.1\n", "unknown option `momentum=` for bn", (3, 4)),
        ('conv 1x1 4 as c\nconv 1x1 4 bn parts="X X_bn" as d\nconv 1x1 4 as d_bn\n', "duplicate layer name `d_bn`", (5, 12)),
    ],
)
def test_misuse_is_a_spec_error_at_the_place(text, message, where):
    with pytest.raises(SpecError) as info:
        loads(HEAD + text, file="t.inc")
    err = info.value
    assert message in err.message, err.message
    assert (err.line, err.column) == where, str(err)
    assert err.hint or "duplicate" in err.message
