import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_cm
from sklearn.metrics import f1_score, jaccard_score, precision_score, recall_score

from helpers import metrics


def _random(seed, n=5000, k=5, ignore=-1):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.6, t, rng.integers(0, k, n))
    t[rng.random(n) < 0.1] = ignore
    return t, p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed):
    t, p = _random(seed)
    cm = metrics.confusion_matrix(t, p, 5, ignore_index=-1)
    keep = t != -1
    np.testing.assert_array_equal(cm, sk_cm(t[keep], p[keep], labels=range(5)))
    s = metrics.scores(cm)
    kw = dict(labels=range(5), average=None, zero_division=0)
    np.testing.assert_allclose(s["iou"], jaccard_score(t[keep], p[keep], **kw))
    np.testing.assert_allclose(s["f1"], f1_score(t[keep], p[keep], **kw))
    np.testing.assert_allclose(s["precision"], precision_score(t[keep], p[keep], **kw))
    np.testing.assert_allclose(s["recall"], recall_score(t[keep], p[keep], **kw))
    assert s["miou_macro"] == pytest.approx(jaccard_score(t[keep], p[keep], average="macro"))
    assert s["f1_macro"] == pytest.approx(f1_score(t[keep], p[keep], average="macro"))
    assert s["iou_micro"] == pytest.approx(jaccard_score(t[keep], p[keep], average="micro"))
    assert s["oa"] == pytest.approx((t[keep] == p[keep]).mean())


def test_chipwise_accumulation_equals_pooled():
    t, p = _random(3, n=9000)
    pooled = metrics.confusion_matrix(t, p, 5, ignore_index=-1)
    chips = sum(
        metrics.confusion_matrix(a, b, 5, -1) for a, b in zip(np.split(t, 3), np.split(p, 3), strict=True)
    )
    np.testing.assert_array_equal(pooled, chips)


def test_absent_class_is_nan_and_excluded_from_macro():
    t = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 1])
    s = metrics.scores(metrics.confusion_matrix(t, p, 3))
    assert np.isnan(s["iou"][2]) and np.isnan(s["f1"][2])
    assert s["miou_macro"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_class_only_predicted_counts_as_zero():
    t = np.array([0, 0, 0, 0])
    p = np.array([0, 0, 0, 2])
    s = metrics.scores(metrics.confusion_matrix(t, p, 3))
    assert s["iou"][2] == 0 and s["miou_macro"] == pytest.approx((0.75 + 0) / 2)


def test_ignore_index_excluded_and_validation():
    t = np.array([[0, 255], [1, 1]])
    p = np.array([[0, 1], [1, 0]])
    cm = metrics.confusion_matrix(t, p, 2, ignore_index=255)
    assert cm.sum() == 3
    with pytest.raises(ValueError, match="0..1"):
        metrics.confusion_matrix(t, p, 2)
    with pytest.raises(ValueError, match="shape"):
        metrics.confusion_matrix(t, p[:1], 2)


def test_empty_matrix_is_nan():
    s = metrics.scores(np.zeros((2, 2)))
    assert np.isnan(s["miou_macro"]) and np.isnan(s["oa"])
