"""Bias amplification, KL, threshold-invariant gap, ABROCA and per-group AP: hand-worked examples,
literal loop implementations of the published formulas, sklearn / scipy agreement and edge cases."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import wasserstein_distance
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from fairrun.metrics import (
    FairnessMetricWarning,
    abroca,
    bias_amplification,
    bias_amplification_t_to_a,
    group_average_precision,
    group_metrics,
    kl,
    ti_gap,
)
from fairrun.metrics.scores import KL_BINS, histogram_bins

pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::fairrun.metrics.FairnessMetricWarning"),
]

TOL = 1e-12


def single_warning(record):
    assert len(record) == 1, [str(w.message) for w in record]
    return str(record[0].message)


def random_case(seed, n_groups=None, n=None):
    """G groups, group-dependent base rates, scores correlated with label and group, some ties."""
    rng = np.random.default_rng(seed)
    n_groups = n_groups or int(rng.integers(2, 6))
    n = n or int(rng.integers(60, 600))
    g = rng.choice(n_groups, n, p=rng.dirichlet(np.full(n_groups, 2.0)))
    y = (rng.random(n) < rng.uniform(0.1, 0.9, n_groups)[g]).astype(np.int64)
    g[: 2 * n_groups] = np.repeat(np.arange(n_groups), 2)
    y[: 2 * n_groups] = np.tile([0, 1], n_groups)
    s = np.clip(0.3 * y + rng.uniform(-0.1, 0.2, n_groups)[g] + rng.normal(0.35, 0.2, n), 0, 1)
    if seed % 2:
        s = np.round(s * 20) / 20  # heavy ties, values on histogram bin edges
    y_pred = (s > 0.5).astype(np.int64)
    return y, y_pred, s, g, n_groups


# ------------------------------------------------------------------ bias amplification

def one_hot(ids, k):
    return np.eye(k, dtype=int)[ids]


def biasamp_loops(tasks, attrs, preds, direction, tasks_train=None, attrs_train=None, sign=False):
    """Wang & Russakovsky (ICML 2021) Eq. 2 written out cell by cell on one-hot matrices.

    ``sign=True`` uses sign(P(a,t) - P(a)P(t)) in {-1, 0, 1} as the indicator (the authors' code),
    otherwise the paper's y_at in {0, 1}. Cells whose conditioning event is empty are skipped.
    """
    if tasks_train is None:
        tasks_train, attrs_train = tasks, attrs
    m = len(tasks_train)
    values = []
    for a in range(attrs.shape[1]):
        for t in range(tasks.shape[1]):
            p_at = np.sum(attrs_train[:, a] * tasks_train[:, t]) / m
            p_a_p_t = attrs_train[:, a].sum() / m * tasks_train[:, t].sum() / m
            if direction == "A->T":
                cond = attrs[:, a] == 1
                if not cond.any():
                    continue
                delta = preds[cond, t].mean() - tasks[cond, t].mean()
            else:
                cond = tasks[:, t] == 1
                if not cond.any():
                    continue
                delta = preds[cond, a].mean() - attrs[cond, a].mean()
            if sign:
                values.append(np.sign(p_at - p_a_p_t) * delta)
            else:
                y_at = float(p_at > p_a_p_t)
                values.append(y_at * delta + (1 - y_at) * -delta)
    return float(np.mean(values))


def test_bias_amplification_hand_worked():
    # group 0: y = 1,1,1,0  y_hat = 1,1,1,1 | group 1: y = 1,0,0,0,0,1  y_hat = 0,0,0,0,0,1
    g = np.array([0] * 4 + [1] * 6)
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 1])
    y_pred = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1])
    # n = 10, n_{T=1} = 5, n_{A=0} = 4, n_{A=1} = 6
    # y_at = [n n_at > n_a n_t]: (0,1): 10*3 > 4*5 -> 1; (0,0): 10*1 > 4*5 -> 0;
    #                            (1,1): 10*2 > 6*5 -> 0; (1,0): 10*4 > 6*5 -> 1
    # Δ_at = P(T_hat=t|a) - P(T=t|a): (0,1): 4/4 - 3/4 = 1/4; (0,0): 0 - 1/4 = -1/4;
    #                                 (1,1): 1/6 - 2/6 = -1/6; (1,0): 5/6 - 4/6 = 1/6
    # terms y Δ + (1-y)(-Δ): 1/4, 1/4, 1/6, 1/6 -> mean over |A||T| = 4 cells = (5/6)/4 = 5/24
    assert bias_amplification(y, y_pred, g) == pytest.approx(5 / 24, abs=TOL)
    # perfect predictions amplify nothing
    assert bias_amplification(y, y, g) == 0.0
    # training labels with the opposite correlation flip every indicator (no ties): -5/24
    y_train = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 0])
    assert bias_amplification(y, y_pred, g, y_true_train=y_train, groups_train=g) == pytest.approx(
        -5 / 24, abs=TOL)
    # group ids as names of columns do not matter: swapping the groups gives the same value
    assert bias_amplification(y, y_pred, 1 - g) == pytest.approx(5 / 24, abs=TOL)


def test_bias_amplification_exact_independence():
    # each group: y = 1, 0 -> n n_at = 4*1 = 4 = n_a n_t = 2*2 for every cell: y_at = 0 everywhere.
    # y_hat = 1 for all: Δ_{a,1} = 1 - 1/2 = 1/2, Δ_{a,0} = 0 - 1/2 = -1/2; terms -1/2, +1/2 -> 0.
    # (Averaging over the positive class only would give -1/2; the authors' sign() gives 0.)
    g = np.array([0, 0, 1, 1])
    y = np.array([1, 0, 1, 0])
    assert bias_amplification(y, np.ones(4, int), g) == 0.0


def test_bias_amplification_t_to_a_hand_worked():
    # T=1 rows: A = 0,0,0,1  A_hat = 0,0,0,0 | T=0 rows: A = 1,1,1,0  A_hat = 1,1,1,1
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    g = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    g_hat = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # n = 8, n_a = 4, n_t = 4: y_at = [8 n_at > 16]: (0,1): n=3 -> 1; (1,1): 1 -> 0; (0,0): 1 -> 0;
    # (1,0): 3 -> 1.  Δ_at = P(A_hat=a|t) - P(A=a|t): (0,1): 1 - 3/4 = 1/4; (1,1): 0 - 1/4 = -1/4;
    # (0,0): 0 - 1/4 = -1/4; (1,0): 1 - 3/4 = 1/4.  Terms: 1/4, 1/4, 1/4, 1/4 -> 1/4
    assert bias_amplification_t_to_a(y, g, g_hat) == pytest.approx(0.25, abs=TOL)
    assert bias_amplification_t_to_a(y, g, g) == 0.0


@pytest.mark.parametrize("seed", range(12))
def test_bias_amplification_matches_formula_loops(seed):
    y, y_pred, _, g, k = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    g_hat = np.where(rng.random(y.size) < 0.3, rng.integers(0, k, y.size), g)
    tasks, attrs = one_hot(y, 2), one_hot(g, k)
    a_to_t = bias_amplification(y, y_pred, g)
    assert a_to_t == pytest.approx(biasamp_loops(tasks, attrs, one_hot(y_pred, 2), "A->T"), abs=TOL)
    # summing over both task values makes the paper's indicator and the authors' sign() agree
    assert a_to_t == pytest.approx(
        biasamp_loops(tasks, attrs, one_hot(y_pred, 2), "A->T", sign=True), abs=TOL)
    assert bias_amplification_t_to_a(y, g, g_hat) == pytest.approx(
        biasamp_loops(tasks, attrs, one_hot(g_hat, k), "T->A"), abs=TOL)
    # indicator from other ("training") labels
    y_tr, _, _, g_tr, _ = random_case(seed + 50, n_groups=k)
    assert bias_amplification(y, y_pred, g, y_true_train=y_tr, groups_train=g_tr) == pytest.approx(
        biasamp_loops(tasks, attrs, one_hot(y_pred, 2), "A->T", one_hot(y_tr, 2), one_hot(g_tr, k)),
        abs=TOL)
    assert bias_amplification_t_to_a(y, g, g_hat, y_true_train=y_tr, groups_train=g_tr) == pytest.approx(
        biasamp_loops(tasks, attrs, one_hot(g_hat, k), "T->A", one_hot(y_tr, 2), one_hot(g_tr, k)),
        abs=TOL)


def test_bias_amplification_edge_cases():
    y = np.array([0, 1, 1, 0])
    with pytest.warns(FairnessMetricWarning, match="fewer than two groups") as record:
        assert np.isnan(bias_amplification(y, y, np.zeros(4, int)))
    single_warning(record)
    with pytest.warns(FairnessMetricWarning, match="fewer than two groups"):
        assert np.isnan(bias_amplification_t_to_a(y, np.zeros(4, int), np.array([0, 1, 0, 1])))
    # an empty group is left out: same value as without it, one warning
    g = np.array([0, 0, 2, 2])
    y_pred = np.array([1, 1, 1, 0])
    with pytest.warns(FairnessMetricWarning, match=r"group\(s\) 1 have no members") as record:
        value = bias_amplification(y, y_pred, g)
    single_warning(record)
    assert value == bias_amplification(y, y_pred, g // 2)
    # one class only: T->A cells of the missing class are left out (warning); A->T is defined (0)
    with pytest.warns(FairnessMetricWarning, match="no rows with y_true=0"):
        bias_amplification_t_to_a(np.ones(4, int), np.array([0, 1, 0, 1]), np.array([0, 0, 0, 1]))
    assert bias_amplification(np.ones(4, int), np.array([1, 0, 0, 1]), np.array([0, 1, 0, 1])) == 0.0
    with pytest.raises(ValueError, match="both"):
        bias_amplification(y, y, g, y_true_train=y)
    with pytest.raises(ValueError, match="binary"):
        bias_amplification(np.array([0, 2, 1, 0]), y, g)


# ------------------------------------------------------------------ per-group AP

@pytest.mark.parametrize("seed", range(10))
def test_group_ap_matches_sklearn(seed):
    y, _, s, g, k = random_case(seed)
    ap = group_average_precision(y, s, g)
    expected = [average_precision_score(y[g == j], s[g == j]) for j in range(k)]
    np.testing.assert_allclose(ap, expected, rtol=0, atol=TOL)


def test_group_ap_edge_cases():
    y = np.array([1, 0, 1, 0, 0, 0, 1, 1])
    s = np.array([0.9, 0.8, 0.4, 0.1, 0.5, 0.6, 0.3, 0.3])
    g = np.array([0, 0, 0, 0, 2, 2, 3, 3])
    # group 0: ranks 0.9(+) 0.8(-) 0.4(+) 0.1(-): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    # group 1 empty, group 2 has no positives -> NaN; group 3 only positives -> 1 (as sklearn)
    with pytest.warns(FairnessMetricWarning) as record:
        ap = group_average_precision(y, s, g)
    message = single_warning(record)
    assert "1 have no members" in message and "2 have no positive labels" in message
    assert ap[0] == pytest.approx(5 / 6, abs=TOL)
    assert np.isnan(ap[1]) and np.isnan(ap[2]) and ap[3] == 1.0
    assert average_precision_score(y[g == 3], s[g == 3]) == 1.0
    # constant scores: one threshold, AP = precision = the group's positive rate
    assert group_average_precision(y[:4], np.full(4, 0.5), g[:4]).tolist() == [0.5]


# ------------------------------------------------------------------ ti_gap (Wasserstein-1)

def test_ti_gap_hand_worked():
    s = np.array([0.2, 0.4, 0.6, 0.8, 0.0, 0.0])
    y = np.array([0, 1, 0, 1, 0, 1])
    g = np.array([0, 0, 1, 1, 2, 2])
    # groups 0 and 1: a shift by 0.4 -> W1 = 0.4.  With group 2 (all at 0): W1(0,2) = 0.3,
    # W1(1,2) = 0.7 -> max 0.7
    assert ti_gap(y[:4], s[:4], g[:4]) == pytest.approx(0.4, abs=TOL)
    assert ti_gap(y, s, g) == pytest.approx(0.7, abs=TOL)
    # the DP gap of "s > tau" integrated over tau in [0, 1] (midpoint rule; exact for steps)
    tau = (np.arange(100000) + 0.5) / 100000
    dp = np.abs((s[:2, None] > tau).mean(0) - (s[2:4, None] > tau).mean(0))
    assert dp.mean() == pytest.approx(0.4, abs=1e-9)
    # by label: y=1 rows 0.4 vs 0.8 -> 0.4; y=0 rows 0.2 vs 0.6 -> 0.4; with group 2: 0.8 and 0.6
    assert ti_gap(y, s, g, given_label=True) == pytest.approx(0.8, abs=TOL)


@pytest.mark.parametrize("seed", range(10))
def test_ti_gap_matches_scipy(seed):
    y, _, s, g, k = random_case(seed)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    expected = max(wasserstein_distance(s[g == i], s[g == j]) for i, j in pairs)
    assert ti_gap(y, s, g) == pytest.approx(expected, abs=TOL)
    by_label = max(wasserstein_distance(s[(g == i) & (y == c)], s[(g == j) & (y == c)])
                   for i, j in pairs for c in (0, 1))
    assert ti_gap(y, s, g, given_label=True) == pytest.approx(by_label, abs=TOL)


def test_ti_gap_edge_cases():
    y = np.array([0, 1, 0, 1])
    assert ti_gap(y, np.full(4, 0.3), np.array([0, 0, 1, 1])) == 0.0
    with pytest.warns(FairnessMetricWarning, match="fewer than two groups") as record:
        assert np.isnan(ti_gap(y, np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4, int)))
    single_warning(record)
    with pytest.warns(FairnessMetricWarning, match="1 have no members") as record:
        assert ti_gap(y, np.array([0.1, 0.2, 0.3, 0.5]), np.array([0, 0, 2, 2])) == pytest.approx(0.25)
    single_warning(record)
    with pytest.warns(FairnessMetricWarning, match="no samples"):
        assert np.isnan(ti_gap([], np.array([]), []))
    # given_label with only one group among the positives: that class is left out, with a warning
    with pytest.warns(FairnessMetricWarning, match="leaves out y=1") as record:
        assert ti_gap(y, np.array([0.1, 0.9, 0.3, 0.5]), np.array([0, 0, 1, 0]),
                      given_label=True) == pytest.approx(0.2)
    single_warning(record)
    # scores need not be probabilities: W1 is in the units of the scores
    assert ti_gap(y, np.array([-5.0, 5.0, 0.0, 0.0]), np.array([0, 0, 1, 1])) == pytest.approx(5.0)


# ------------------------------------------------------------------ KL (Ramaswamy et al.)

def kl_reference(y, s, g):
    """The GAN-debiasing estimator written out: per group and class, np.histogram with 50 bins on
    [0, 1], Gaussian smoothing (sigma 1 bin, of float counts), normalise, +1e-6; mean of the four
    directed KLs; max over pairs of groups with both classes."""
    def smoothed(x):
        hist = gaussian_filter(np.histogram(x, bins=50, range=(0, 1))[0].astype(float), 1)
        return hist / hist.sum() + 1e-6

    def kl_div(p, q):
        return np.sum(p * np.log(p / q))

    groups = [j for j in np.unique(g) if 0 < y[g == j].sum() < (g == j).sum()]
    values = []
    for a, i in enumerate(groups):
        for j in groups[a + 1:]:
            four = []
            for c in (0, 1):
                p, q = smoothed(s[(g == i) & (y == c)]), smoothed(s[(g == j) & (y == c)])
                four += [kl_div(p, q), kl_div(q, p)]
            values.append(np.mean(four))
    return max(values)


@pytest.mark.parametrize("seed", range(8))
def test_kl_matches_reference_estimator(seed):
    y, _, s, g, _ = random_case(seed)
    assert kl(y, s, g) == pytest.approx(kl_reference(y, s, g), rel=1e-12, abs=TOL)


def test_histogram_bins_match_numpy():
    rng = np.random.default_rng(0)
    edges = np.linspace(0, 1, KL_BINS + 1)
    s = np.concatenate([rng.random(5000), edges, np.nextafter(edges, 2), np.nextafter(edges, -1),
                        np.arange(1000) / 999, np.float32(rng.random(1000)).astype(float)])
    s = np.clip(s, 0, 1)
    np.testing.assert_array_equal(np.bincount(histogram_bins(s), minlength=KL_BINS),
                                  np.histogram(s, bins=KL_BINS, range=(0, 1))[0])


def test_kl_properties_and_edge_cases():
    y, _, s, g, _ = random_case(3, n_groups=2)
    assert kl(y, s, g) == pytest.approx(kl(y, s, 1 - g), abs=TOL)  # symmetric in the groups
    assert kl(y, s, g) > 0
    twice = np.r_[g * 0, g * 0 + 1]  # two groups with identical rows
    assert kl(np.r_[y, y], np.r_[s, s], twice) == 0.0
    assert kl(y, np.full(y.size, 0.7), g) == 0.0  # constant scores
    # with three groups, one without negatives is left out of the maximum over pairs
    y3, _, s3, g3, _ = random_case(4, n_groups=3)
    y3[g3 == 2] = 1
    with pytest.warns(FairnessMetricWarning, match="2 do not have both") as record:
        assert kl(y3, s3, g3) == kl(y3[g3 < 2], s3[g3 < 2], g3[g3 < 2])
    single_warning(record)
    # a group without negatives is left out; with two groups that leaves one: NaN + warning
    y2, s2, g2 = np.array([0, 1, 1, 1]), np.array([0.1, 0.9, 0.8, 0.7]), np.array([0, 0, 1, 1])
    with pytest.warns(FairnessMetricWarning) as record:
        assert np.isnan(kl(y2, s2, g2))
    message = single_warning(record)
    assert "1 do not have both positive and negative labels" in message and "kl is NaN" in message
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        kl(y2, s2 * 2, g2)


# ------------------------------------------------------------------ ABROCA

def abroca_dense(y, s, g, i, j, points=100001):
    """|ROC_i - ROC_j| on a fine FPR grid (sklearn roc_curve + linear interpolation), trapezoid.

    A vertical ROC step of height h costs at most h * (grid step) of error: below 2e-5 in all.
    """
    x = np.linspace(0, 1, points)
    curves = []
    for grp in (i, j):
        fpr, tpr, _ = roc_curve(y[g == grp], s[g == grp], drop_intermediate=False)
        curves.append(np.interp(x, fpr, tpr))
    return np.trapezoid(np.abs(curves[0] - curves[1]), x)


def test_abroca_hand_worked():
    # group 0: scores 0.9 0.8 0.7 0.6 with labels 1 0 0 1: ROC (0,0) (0,.5) (.5,.5) (1,.5) (1,1);
    # group 1: all scores tied, the diagonal. |0.5 - x| over [0, 1] = 1/4, though both AUCs are 1/2
    y = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5, 0.5])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert abroca(y, s, g) == pytest.approx(0.25, abs=TOL)
    # labels 1 0 1 0: ROC (0,0) (0,.5) (.5,.5) (.5,1) (1,1) lies above the diagonal: area = 0.75 - 0.5
    y[:4] = [1, 0, 1, 0]
    assert abroca(y, s, g) == pytest.approx(0.25, abs=TOL)
    assert abroca(y, np.full(8, 0.5), g) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_abroca_matches_dense_integration(seed):
    y, _, s, g, k = random_case(seed)
    value = abroca(y, s, g)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    assert value == pytest.approx(max(abroca_dense(y, s, g, i, j) for i, j in pairs), abs=2e-5)
    aucs = [roc_auc_score(y[g == j], s[g == j]) for j in range(k)]
    assert value >= max(aucs) - min(aucs) - TOL


def test_abroca_needs_two_groups_with_both_classes():
    with pytest.warns(FairnessMetricWarning, match="abroca is NaN") as record:
        assert np.isnan(abroca(np.array([0, 1, 1, 1]), np.array([0.1, 0.9, 0.8, 0.7]),
                               np.array([0, 0, 1, 1])))
    single_warning(record)


# ------------------------------------------------------------------ group_metrics

NEW_KEYS = ["ba", "kl", "ti_gap"]


@pytest.mark.parametrize("seed", range(6))
def test_group_metrics_new_keys_match_functions(seed):
    y, y_pred, s, g, k = random_case(seed)
    summary = group_metrics(y, y_pred, g, scores=s)
    assert summary["ba"] == bias_amplification(y, y_pred, g)
    assert summary["kl"] == pytest.approx(kl(y, s, g), abs=TOL)
    assert summary["ti_gap"] == pytest.approx(ti_gap(y, s, g), abs=TOL)
    np.testing.assert_allclose([summary[f"ap[{j}]"] for j in range(k)],
                               group_average_precision(y, s, g), rtol=0, atol=TOL)
    assert summary["ap"] == pytest.approx(average_precision_score(y, s), abs=TOL)
    assert summary["auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL)
    keys = list(summary)
    assert keys[keys.index("eopp_diff") + 1: keys.index("eopp_diff") + 4] == NEW_KEYS
    first_cell = keys.index("worst_cell_acc")  # the per-cell columns (issue 18) follow the per-group ones
    assert keys[first_cell - k:first_cell] == [f"ap[{j}]" for j in range(k)]


def test_group_metrics_without_scores_and_torch():
    y, y_pred, s, g, k = random_case(1)
    summary = group_metrics(y, y_pred, g)  # no warning: ba needs no scores
    assert summary["ba"] == bias_amplification(y, y_pred, g)
    assert np.isnan(summary["kl"]) and np.isnan(summary["ti_gap"])
    assert all(np.isnan(summary[f"ap[{j}]"]) for j in range(k))
    as_torch = group_metrics(torch.tensor(y), torch.tensor(y_pred), torch.tensor(g),
                             scores=torch.tensor(s, dtype=torch.float32))
    as_numpy = group_metrics(y, y_pred, g, scores=s.astype(np.float32))
    np.testing.assert_equal(as_torch, as_numpy)


def test_group_metrics_edge_cases():
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    y_pred = np.array([0, 1, 0, 0, 1, 1, 1, 1])
    s = np.array([0.2, 0.9, 0.4, 0.3, 0.8, 0.9, 0.7, 0.6])
    g = np.array([0, 0, 0, 0, 2, 2, 2, 2])
    with pytest.warns(FairnessMetricWarning, match=r"group\(s\) mid have no members") as record:
        summary = group_metrics(y, y_pred, g, scores=s, group_names=["lo", "mid", "hi"])
    single_warning(record)
    assert np.isnan(summary["ap[mid]"])
    # lo ranks + + - -: AP 1; hi ranks - + - +: AP = 1/2 * 1/2 + 1/2 * 2/4 = 1/2
    assert summary["ap[lo]"] == 1.0 and summary["ap[hi]"] == pytest.approx(0.5, abs=TOL)
    assert summary["ti_gap"] == pytest.approx(wasserstein_distance(s[:4], s[4:]), abs=TOL)
    for key in NEW_KEYS:
        assert np.isfinite(summary[key])
    # a single group: every between-group value is NaN, still one warning
    with pytest.warns(FairnessMetricWarning, match="fewer than two groups") as record:
        summary = group_metrics(y, y_pred, np.zeros(8, int), scores=s)
    single_warning(record)
    assert all(np.isnan(summary[key]) for key in NEW_KEYS)
    assert summary["ap[0]"] == pytest.approx(average_precision_score(y, s), abs=TOL)
    # scores that are not probabilities: kl is NaN (warning), the rest is computed
    with pytest.warns(FairnessMetricWarning, match=r"kl is NaN: scores outside \[0, 1\]") as record:
        summary = group_metrics(y, y_pred, g, scores=s * 10 - 5)
    assert np.isnan(summary["kl"]) and summary["ti_gap"] > 0
    # multi-class: the new keys exist and are NaN
    with pytest.warns(FairnessMetricWarning, match="no members"):
        summary = group_metrics(y * 2, y_pred, g, scores=s, num_classes=3)
    assert all(np.isnan(summary[key]) for key in NEW_KEYS + ["ap[0]", "ap[2]"])
