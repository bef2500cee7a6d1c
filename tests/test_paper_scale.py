"""The paper profile: paper-size models against the published architectures, and the profile's chain on fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import make_fixtures  # tests/data, on the path through conftest
import pytest
import torch
import yaml
from test_prithvi import published_v1_shapes

from helpers import chain, results
from helpers.models import cnn, prithvi
from helpers.models.resnet import ResNetEncoder
from helpers.models.segformer import SegFormer
from helpers.models.vit import ViTSegmenter
from helpers.runs import cnn_settings, fm_settings, schedule

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "notebooks" / "params" / "paper.yaml"


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet34_encoder_has_torchvision_resnet34_parameter_count():
    # torchvision's resnet34 has 21,797,672 parameters, 513,000 of them in the ImageNet classifier
    assert n_params(ResNetEncoder(3)) == 21_797_672 - 513_000


@pytest.mark.parametrize("name", sorted(cnn.PAPER_MODELS))
def test_paper_cnns_are_resnet34_class_and_keep_the_input_size(name):
    model = cnn.build_model(name, 6, 3, "paper").eval()
    assert 23e6 < cnn.count_parameters(model) < 28e6  # ResNet-34 encoder + the published decoder widths
    assert cnn.count_parameters(cnn.build_model(name, 6, 3)) < 1e6  # the CPU size is another model
    with torch.no_grad():
        assert model(torch.rand(1, 6, 40, 56)).shape == (
            1,
            3,
            40,
            56,
        )  # not a multiple of 32: padded, cropped


def test_paper_transformers_have_the_published_encoder_sizes():
    vit = ViTSegmenter(3, 2, img_size=224, mean=[0.0] * 3, std=[1.0] * 3, **fm_settings.PAPER_VIT)
    seg = SegFormer(3, 2, mean=[0.0] * 3, std=[1.0] * 3, **fm_settings.PAPER_SEGFORMER)
    encoder = sum(p.numel() for n, p in vit.named_parameters() if not n.startswith(("head", "classifier")))
    assert encoder == pytest.approx(85.8e6, rel=0.01)  # ViT-B/16: 86 M
    assert n_params(seg.encoder) == pytest.approx(24.2e6, rel=0.01)  # MiT-b2: 24 M (SegFormer-B2 paper)


def test_in_study_prithvi_arch_is_prithvi_100m_size_in_the_paper_profile():
    # the architecture pretrained and fine-tuned in-study has the published checkpoint's exact tensor layout
    cfg = fm_settings.paper_settings().pretrain.model.replace(img_size=224, num_frames=3)
    with torch.device("meta"):
        model = prithvi.PrithviMAE(cfg)
    ours = {k: tuple(v.shape) for k, v in prithvi.native_to_v1(model.state_dict()).items()}
    assert ours == published_v1_shapes()
    assert (
        fm_settings.size_label(cfg) == "Prithvi-100M size"
        and fm_settings.size_label(prithvi.PRITHVI_SMALL) == "small"
    )


def test_cpu_size_keeps_the_run_keys_and_epoch_caps_count_chips():
    assert cnn.key_settings("cpu") == {} and cnn.key_settings("paper") == {"size": "paper"}
    with pytest.raises(ValueError, match="unknown model size"):
        cnn.build_model("unet", 6, 2, "huge")
    assert schedule.epochs_to_steps(252, 100, 16) == 1575 and schedule.epochs_to_steps(3, 0.1, 16) == 1
    assert cnn_settings.train_defaults("cpu") == cnn_settings.TRAIN_DEFAULTS
    assert (
        cnn_settings.train_defaults("paper")["crop_size"] == 224
        and cnn_settings.train_defaults("paper", quick=True)["max_steps"] == 2
    )


def test_paper_profile_names_only_declared_parameters():
    params = chain.load_params(PAPER)
    for nb in chain.numbered_notebooks():
        chain.parameters_for(nb, params)  # raises on a per-notebook key the notebook does not declare
    assert params["model_size"] == "paper" and params["max_epochs"] == 100
    assert set(params["dataset_names"]) == {"sen1floods11", "burn_scars", "crop"}


@pytest.mark.slow
def test_paper_profile_chain_on_real_layout_fixtures(tmp_path):
    """The paper profile end to end on tiny chips in two published layouts (single- and three-date), models at paper
    size, a few steps each.

    One model of each kind (ResNet-34 U-Net, ViT-B/16, SegFormer MiT-b2, the Prithvi-100M-size in-study MAE row with
    its pretraining) keeps the checkpoints to about 15 GB; the other paper-size models are built and run by the tests
    above and by ``benchmarks/paper_scale.py``.
    """
    make_fixtures.make_all(tmp_path / "data")
    out = tmp_path / "out"
    extra = {
        "dataset_names": ["sen1floods11", "crop"],
        "data_dir": str(tmp_path / "data"),
        "quick": True,
        "seeds": [0],
        "model_names": ["unet"],
        "results_path": str(out / "results.csv"),
        "convergence_path": str(out / "convergence.csv"),
        **{k: str(out / k) for k in ("figures_dir", "cache_dir", "runs_dir", "maps_dir")},
    }
    profile = yaml.safe_load(PAPER.read_text())  # the profile, with fewer rows in notebook 04
    profile["notebooks"]["04_foundation_models"] |= {
        "fm_models": ["prithvi_arch_small_mae", "vit", "segformer", "prithvi_100m"],
        "pretrained_models": ["presto_frozen_lgbm"],
    }
    params = tmp_path / "paper.yaml"
    params.write_text(yaml.safe_dump(profile))
    try:
        times = chain.run(params, tmp_path / "executed", extra=extra, side_by_side=["03", "04"], workers=2)
        assert sorted(times) == [b.stem for b in chain.numbered_notebooks()]
        df = results.read(out / "results.csv")
        ok = df[df["status"] == "ok"].drop_duplicates(["dataset", "model"])
        sizes = ok.set_index(["dataset", "model"])["n_params"]
        for ds in ("sen1floods11", "crop"):
            assert sizes[(ds, "unet")] > 24e6, ds  # ResNet-34 class, not the CPU widths
            assert sizes[(ds, "vit")] > 85e6 and sizes[(ds, "segformer")] > 24e6, ds
            assert sizes[(ds, "prithvi_arch_small_mae")] > 86e6, ds
        assert (ok["steps"].dropna() <= 2).all()  # quick mode: a few steps, not the profile's epoch cap
        notes = ok.loc[ok["model"] == "prithvi_arch_small_mae", "note"]
        assert notes.str.contains("Prithvi-100M size").all()
        assert set(df.loc[df["model"] == "prithvi_100m", "status"]) <= {"not_run"}  # no published file here
    finally:  # the paper-size checkpoints are large: free the disk for the rest of the suite
        for folder in ("runs_dir", "cache_dir"):
            shutil.rmtree(out / folder, ignore_errors=True)
