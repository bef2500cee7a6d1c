import pytest
import torch

from helpers.models import cnn
from helpers.models.cnn_layers import PRITHVI_HLS_MEAN, PRITHVI_HLS_STD, InputNorm, default_stats
from helpers.models.deeplab import DeepLabV3Plus
from helpers.models.unet import UNet

NAMES = ["fcn", "unet", "deeplabv3plus"]


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels", [6, 18])
def test_output_shape_train_and_eval(name, in_channels):
    torch.manual_seed(0)
    model = cnn.build_model(name, in_channels, 5)
    out = model(torch.rand(2, in_channels, 64, 64))
    assert out.shape == (2, 5, 64, 64)
    model.eval()
    with torch.no_grad():
        # Sizes that are not multiples of the network stride must come back unchanged.
        for h, w in [(37, 51), (9, 7), (100, 64)]:
            assert model(torch.rand(1, in_channels, h, w)).shape == (1, 5, h, w)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_small_and_only_first_conv_depends_on_bands(name):
    n6 = cnn.count_parameters(cnn.build_model(name, 6, 2))
    n18 = cnn.count_parameters(cnn.build_model(name, 18, 2))
    # Defaults are sized for a 2-core CPU: well under a million parameters.
    assert 100_000 < n6 < 1_000_000
    # The 12 extra bands only widen the first 3x3 convolution (16 filters by default), nothing else.
    assert n18 - n6 == 12 * 16 * 9
    # More classes only widen the 1x1 classifier(s): FCN-8s has three score layers, the others one.
    n6_k13 = cnn.count_parameters(cnn.build_model(name, 6, 13))
    n_scores = 3 if name == "fcn" else 1
    widths = {"fcn": 128 + 96 + 64, "unet": 16, "deeplabv3plus": 64}[name]
    assert n6_k13 - n6 == 11 * (widths + n_scores)


def _unet_params(c_in: int, k: int, base: int, depth: int) -> int:
    """Hand count: two 3x3 conv+BN per level, 2x2 up-convs with bias, 1x1 classifier with bias."""

    def double(ci, co):
        return 9 * ci * co + 2 * co + 9 * co * co + 2 * co

    widths = [base * 2**i for i in range(depth + 1)]
    n, prev = 0, c_in
    for w in widths:
        n += double(prev, w)
        prev = w
    for hi, lo in zip(widths[::-1][:-1], widths[::-1][1:], strict=True):
        n += 4 * hi * lo + lo + double(2 * lo, lo)
    return n + widths[0] * k + k


@pytest.mark.parametrize(("base", "depth"), [(16, 3), (8, 2), (32, 4)])
def test_unet_width_and_depth_are_configurable(base, depth):
    model = UNet(18, 4, base=base, depth=depth)
    assert cnn.count_parameters(model) == _unet_params(18, 4, base, depth)
    assert model(torch.rand(1, 18, 40, 40)).shape == (1, 4, 40, 40)


def test_every_parameter_receives_gradient():
    torch.manual_seed(0)
    for name in NAMES:
        model = cnn.build_model(name, 6, 3)
        model(torch.rand(2, 6, 64, 64)).square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"{name}: parameters without gradient {missing}"


def test_deeplab_output_stride_16_and_batch_of_one_in_training():
    model = DeepLabV3Plus(6, 2, output_stride=16, atrous_rates=(6, 12, 18))
    assert model(torch.rand(1, 6, 64, 64)).shape == (1, 2, 64, 64)  # image pooling works without BatchNorm
    with pytest.raises(ValueError, match="output_stride"):
        DeepLabV3Plus(6, 2, output_stride=4)


def test_normalisation_defaults_are_prithvi_stats_repeated_per_date():
    mean, std = default_stats(18)
    assert mean == list(PRITHVI_HLS_MEAN) * 3 and std == list(PRITHVI_HLS_STD) * 3
    model = cnn.build_model("unet", 18, 2)
    sd = model.state_dict()
    assert torch.allclose(sd["norm.mean"].flatten(), torch.tensor(mean))
    assert torch.allclose(sd["norm.std"].flatten(), torch.tensor(std))
    # Buffers are saved with the weights but are not trainable parameters.
    assert "norm.mean" not in dict(model.named_parameters())
    x = torch.tensor(mean).view(1, 18, 1, 1).expand(1, 18, 4, 4)
    assert torch.allclose(model.norm(x), torch.zeros(1, 18, 4, 4), atol=1e-6)
    assert torch.allclose(
        model.norm(x + torch.tensor(std).view(1, 18, 1, 1)), torch.ones(1, 18, 4, 4), atol=1e-5
    )


def test_normalisation_errors_and_explicit_stats():
    with pytest.raises(ValueError, match="6 \\* n_dates"):
        InputNorm(7)
    norm = InputNorm(2, mean=[1.0, 2.0], std=[2.0, 4.0])
    assert torch.allclose(norm(torch.tensor([3.0, 6.0]).view(1, 2, 1, 1)).flatten(), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="2 values"):
        InputNorm(2, mean=[0.0], std=[1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        InputNorm(2, mean=[0.0, 0.0], std=[1.0, 0.0])
    with pytest.raises(ValueError, match=r"\[B, 6, H, W\]"):
        cnn.build_model("fcn", 6, 2)(torch.rand(1, 18, 32, 32))


def test_build_model_by_name_and_seeded_init():
    with pytest.raises(ValueError, match="unknown CNN"):
        cnn.build_model("resnet", 6, 2)
    torch.manual_seed(3)
    a = cnn.build_model("deeplabv3plus", 6, 2, aspp_channels=32)
    torch.manual_seed(3)
    b = cnn.build_model("deeplabv3plus", 6, 2, aspp_channels=32)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert cnn.model_size_mb(a) > cnn.count_parameters(a) * 4 / 2**20  # buffers are stored too


@pytest.mark.parametrize("name", NAMES)
def test_initial_loss_is_near_uniform_guess(name):
    # Classifier init keeps the logits small: the loss starts near the uniform guess log K (He init: several x).
    torch.manual_seed(0)
    model = cnn.build_model(name, 18, 13)
    logits = model(torch.rand(2, 18, 64, 64) * 0.4)
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 13, (2, 64, 64)))
    assert loss.item() == pytest.approx(float(torch.log(torch.tensor(13.0))), rel=0.25)
