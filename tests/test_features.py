import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier

from helpers import features


def _brute_mean_std(a: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Window statistics by explicit loops over a reflect-padded (edge pixel repeated) copy."""
    r = size // 2
    p = np.pad(a.astype(np.float64), ((0, 0), (r, r), (r, r)), mode="symmetric")
    mean = np.empty(a.shape)
    std = np.empty(a.shape)
    for i in range(a.shape[1]):
        for j in range(a.shape[2]):
            win = p[:, i : i + size, j : j + size].reshape(a.shape[0], -1)
            mean[:, i, j] = win.mean(axis=1)
            std[:, i, j] = win.std(axis=1)
    return mean, std


@pytest.mark.parametrize("size", features.WINDOWS)
def test_window_mean_std_match_brute_force(size):
    a = np.random.default_rng(size).uniform(0, 0.6, (6, 11, 17)).astype(np.float32)
    m, s = features.local_mean_std(a, size)
    bm, bs = _brute_mean_std(a, size)
    np.testing.assert_allclose(m, bm, atol=1e-6)
    np.testing.assert_allclose(s, bs, atol=2e-5)


def test_constant_image_has_zero_std_and_gradient():
    a = np.full((12, 9, 9), 0.3137, dtype=np.float32)
    for w in features.WINDOWS:
        m, s = features.local_mean_std(a, w)
        assert np.all(s == 0)
        np.testing.assert_allclose(m, 0.3137, rtol=1e-6)
    assert np.all(features.gradient_magnitude(a) == 0)


def test_step_edge_gradient():
    a = np.zeros((6, 8, 10), dtype=np.float32)
    a[:, :, 5:] = 0.4  # vertical step between columns 4 and 5
    g = features.gradient_magnitude(a)
    np.testing.assert_allclose(g[:, :, 4:6], 0.2, atol=1e-7)
    assert np.all(g[:, :, :4] == 0) and np.all(g[:, :, 6:] == 0)
    # the same edge turned horizontal gives the same answer
    np.testing.assert_allclose(features.gradient_magnitude(a.transpose(0, 2, 1)), g.transpose(0, 2, 1))


def test_ndvi_nbr_ndwi_on_known_values():
    a = np.zeros((6, 1, 3), dtype=np.float32)
    b = dict(zip(features.BANDS, range(6), strict=True))
    a[b["B04"]] = [0.1, 0.3, 0.0]
    a[b["B8A"]] = [0.5, 0.1, 0.0]
    a[b["B12"]] = [0.25, 0.1, 0.0]
    a[b["B03"]] = [0.1, 0.3, 0.0]
    idx = features.spectral_indices(a)
    np.testing.assert_allclose(idx[0, 0], [0.4 / 0.6, -0.2 / 0.4, 0.0], rtol=1e-6)  # NDVI; nodata -> 0
    np.testing.assert_allclose(idx[1, 0], [0.25 / 0.75, 0.0, 0.0], atol=1e-7)  # NBR
    np.testing.assert_allclose(idx[2, 0], [-0.4 / 0.6, 0.2 / 0.4, 0.0], rtol=1e-6)  # NDWI


def test_index_is_clipped_for_negative_reflectance():
    assert features.normalised_difference(np.float32(0.05), np.float32(-0.04)) == 1.0


def test_multidate_indices_are_per_date():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.01, 0.5, (18, 4, 5)).astype(np.float32)
    idx = features.spectral_indices(a)
    assert idx.shape == (9, 4, 5)
    np.testing.assert_allclose(idx[3], features.normalised_difference(a[6 + 3], a[6 + 2]))  # date-2 NDVI


@pytest.mark.parametrize("n_channels, expected_aug", [(6, 6 * 8 + 3), (18, 18 * 8 + 9)])
def test_feature_sets_shapes_and_names(n_channels, expected_aug):
    a = np.random.default_rng(1).uniform(0, 0.5, (n_channels, 6, 7)).astype(np.float32)
    X, names = features.feature_matrix(a, "spectral")
    assert X.shape == (42, n_channels) and X.flags.c_contiguous
    np.testing.assert_array_equal(X[7 * 2 + 3], a[:, 2, 3])  # row i*W + j is pixel (i, j)
    Xa, names_a = features.feature_matrix(a, "aug")
    assert Xa.shape == (42, expected_aug) and len(set(names_a)) == expected_aug
    assert names_a[:n_channels] == names
    table = features.feature_table(n_channels, "aug")
    assert table["name"].tolist() == names_a
    # column k of the matrix is the feature the table says it is
    k = names_a.index(f"{features.channel_names(n_channels)[2]}_std7")
    np.testing.assert_allclose(Xa[:, k], features.local_mean_std(a, 7)[1][2].ravel())
    k = names_a.index(f"{features.channel_names(n_channels)[1]}_grad")
    np.testing.assert_allclose(Xa[:, k], features.gradient_magnitude(a)[1].ravel())
    assert Xa.dtype == np.float32 and np.isfinite(Xa).all()


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match="6 x n_dates"):
        features.feature_matrix(np.zeros((5, 4, 4), np.float32), "aug")
    with pytest.raises(ValueError, match="unknown feature set"):
        features.feature_matrix(np.zeros((6, 4, 4), np.float32), "texture")
    with pytest.raises(ValueError, match="odd"):
        features.local_mean_std(np.zeros((6, 4, 4), np.float32), 4)


def test_transformer_in_a_pipeline():
    rng = np.random.default_rng(2)
    chips = rng.uniform(0, 0.5, (3, 6, 8, 8)).astype(np.float32)
    y = (chips[:, 3] > chips[:, 2]).astype(int).reshape(-1)
    pf = features.PixelFeatures("aug").fit(chips)
    assert pf.transform(chips).shape == (3 * 64, len(pf.get_feature_names_out()))
    np.testing.assert_array_equal(pf.transform(chips[1])[5], features.feature_matrix(chips[1], "aug")[0][5])
    pipe = make_pipeline(features.PixelFeatures("spectral"), DecisionTreeClassifier(random_state=0)).fit(
        chips, y
    )
    assert (pipe.predict(chips) == y).mean() == 1.0
    with pytest.raises(ValueError, match="channels"):
        pf.transform(rng.uniform(0, 0.5, (1, 12, 8, 8)))
