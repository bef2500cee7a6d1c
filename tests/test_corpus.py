"""The unlabelled pretraining corpus: written by the simulator, read like a dataset, disjoint from labelled chips."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from helpers.data import corpus, datasets, simulate

LABELLED = {
    "sim-crop": "sim-crop",
    "sim-burn": "sim-burn",
    "sim-flood": "sim-flood",
    "sim-texture": "sim-texture-0.5",
}


def _date_hashes(a: np.ndarray) -> set[str]:
    """One hash per date of a reflectance image, on the int16 grid the files store (bands 6 per date)."""
    q = np.rint(np.asarray(a, np.float64) * 1e4).astype(np.int16)
    return {hashlib.sha256(q[i : i + 6].tobytes()).hexdigest() for i in range(0, len(q), 6)}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, corpus.Corpus]:
    base = tmp_path_factory.mktemp("corpus")
    return {f: corpus.prepare_corpus(base, f, 4, size="quick", seed=0) for f in simulate.CORPUS_FAMILIES}


def test_corpus_images_are_the_families_imagery_without_labels(corpora):
    for family, c in corpora.items():
        assert c.chip_ids("train") == ["u00000", "u00001", "u00002", "u00003"] and c.chip_ids("val") == []
        a, y = c.read_arrays("u00000")
        assert y is None and a.dtype == np.float32
        assert a.shape == (6 * (3 if family == "sim-crop" else 1), 64, 64), family
        assert 0.0 <= a.min() and a.max() < 1.7
        assert not list(c.root.rglob("*mask*")) and not list(c.root.rglob("*Label*"))
        card = json.loads((c.root / "corpus.json").read_text())
        assert card["simulated"] is True and "SIMULATED" in card["description"]
        assert len({h for i in c.chip_ids() for h in _date_hashes(c.read_arrays(i)[0])}) == 4 * c.n_times


def test_corpus_never_contains_a_labelled_chip_of_any_split(corpora, tmp_path):
    for family, name in LABELLED.items():
        labelled = set()
        for replicate in (0, 1):
            ds = datasets.with_bands(
                datasets.prepare(name, tmp_path, size="quick", seed=0, replicate=replicate)
            )
            for split in ("train", "val", "test"):
                for cid in ds.chip_ids(split):
                    labelled |= _date_hashes(ds.read_arrays(cid)[0])
        assert labelled, name
        # the check can see a match: a labelled chip hashes to itself
        probe = ds.chip_ids("test")[0]
        assert _date_hashes(ds.read_arrays(probe)[0]) <= labelled
        c = corpora[family]
        mine = {h for i in c.chip_ids() for h in _date_hashes(c.read_arrays(i)[0])}
        assert not mine & labelled, family


def test_corpus_is_cached_and_deterministic(corpora, tmp_path):
    c = corpora["sim-burn"]
    stamp = (c.root / "images" / "u00000.tif").stat().st_mtime_ns
    again = corpus.prepare_corpus(c.root.parents[1], "sim-burn", 4, size="quick", seed=0)
    assert (again.root / "images" / "u00000.tif").stat().st_mtime_ns == stamp
    other = corpus.prepare_corpus(tmp_path, "sim-burn", 4, size="quick", seed=0)
    for cid in c.chip_ids():
        assert np.array_equal(other.read_arrays(cid)[0], c.read_arrays(cid)[0])
    reseeded = corpus.prepare_corpus(tmp_path, "sim-burn", 4, size="quick", seed=1)
    assert not np.array_equal(reseeded.read_arrays("u00000")[0], c.read_arrays("u00000")[0])


def test_bad_corpus_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus family"):
        simulate.generate_unlabelled("sim-forest", tmp_path / "x", 2, size="quick")
    with pytest.raises(FileNotFoundError, match="corpus.json"):
        corpus.Corpus(tmp_path)
    root = simulate.generate_unlabelled("sim-flood", tmp_path / "f", 2, size="quick")
    (root / "images" / "u00001.tif").unlink()
    with pytest.raises(ValueError, match="lists 2 images but images/ holds 1"):
        corpus.Corpus(root)


def test_pretraining_reads_a_corpus_into_one_block_with_the_same_values(corpora):
    from helpers.runs import pretexts

    c = corpora["sim-crop"]

    class Plain:  # the same images without a declared shape: one array each
        name, n_times = c.name, c.n_times

        def chip_ids(self, split="train"):
            return c.chip_ids(split)

        def read_arrays(self, cid):
            return c.read_arrays(cid)

    blocked = pretexts.load_images([c], single_date=True)
    plain = pretexts.load_images([Plain()], single_date=True)
    assert len(blocked) == len(plain) == 3 * 4
    assert all(np.array_equal(a, b) and a.dtype == np.int16 for a, b in zip(blocked, plain, strict=True))
    assert blocked[0].base is not None and all(b.base is blocked[0].base for b in blocked)  # one allocation
