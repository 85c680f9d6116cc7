"""Train the runs of the evidence tests and print, per seed, the numbers the tests assert on (JSON).

The evidence tests (tests/helpers/evidence.py and the tests that use it, plus test_train's rarer-group test,
test_synthetic's and test_vae's) assert that a method changes a metric on small CPU runs. CPU results are
bit-identical on one machine but not across machines: the kernels picked for the CPU (torch's own,
``ATEN_CPU_CAPABILITY``; oneDNN's convolutions; MKL's matrix products) round differently, and a run
diverges as if it had another seed. Measure under several kernel settings, e.g. the three the
thresholds were set from (tests/helpers/evidence.py):

    python scripts/measure_evidence.py --jobs 2 --out native.json
    ATEN_CPU_CAPABILITY=default python scripts/measure_evidence.py --jobs 2 --out default.json
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python scripts/measure_evidence.py --jobs 2 --out avx2.json

(On an AVX-512 machine ``ATEN_CPU_CAPABILITY=avx2`` alone gave runs bit-identical to the native ones.)
Every run uses one torch thread, as the tests do (tests/conftest.py). Runs go to ``$FAIRRUN_EVIDENCE_DIR``
(default: a new temporary folder); set it to a folder of your own to keep them, e.g. to re-run the
evidence tests on the same runs (``FAIRRUN_EVIDENCE_DIR=DIR pytest tests/evidence/test_groupdro.py``) or to add
seeds later. ``--only`` picks checks by name (comma-separated), ``--seeds`` e.g. ``0-4`` (the default) or
``0,3``. All checks for seeds 0-4 (about 90 runs) take about 25 minutes with ``--jobs 2`` on two free cores.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tests import conftest  # noqa: E402,F401  (one torch thread, FAIRRUN_CACHE, FAIRRUN_EVIDENCE_DIR)
from tests.helpers import evidence  # noqa: E402

METRICS = ("accuracy", "worst_group_acc", "acc[A]", "acc[B]", "acc_gap", "dp_diff", "eo_diff", "eopp_diff")


def _runs(method_overrides, extra=(), splits=("test",), columns=()):
    """A check of plain evidence runs: METRICS (and ``columns``) of the ``splits`` rows of one seed."""

    def measure(seed):
        (res,) = evidence.results(list(method_overrides), seeds=(seed,), extra=tuple(extra))
        rows = res.set_index("split")
        out = {}
        for split in splits:
            suffix = "" if split == "test" else f"@{split}"
            for key in (*METRICS, *columns):
                out[key + suffix] = float(rows.loc[split, key])
        return out

    return measure


def _checks() -> dict:
    """name -> measure(seed) -> {number: value}: every number an evidence test asserts on, per seed."""
    from tests.evidence import test_fair_mask, test_synthetic, test_train, test_vae
    from tests.integration.test_dbvae import EVIDENCE_16PX
    from tests.unit.test_decision import POSTPROCESS_DP
    from tests.integration.test_fair_reg import FAIR_REG_ACCURACY, FAIR_REG_EOPP
    from tests.integration.test_groupdro import GROUPDRO
    from tests.integration.test_methods_data import OVERSAMPLE, REWEIGHT

    spurious = evidence.SPURIOUS
    vae_dir = evidence._root() / f"vae-{evidence.kernel_tag()}"
    return {
        # the rare-group set-up (group B 2% of training): test_fair_reg, test_fairalm, test_decision
        "erm_rare": _runs([]),
        "fair_reg_accuracy_rare": _runs(FAIR_REG_ACCURACY),
        "fair_reg_eopp_rare": _runs(FAIR_REG_EOPP),
        "fairalm_rare": _runs(["method=fairalm"]),
        "postprocess_dp_rare": _runs(POSTPROCESS_DP, splits=("test", "test_raw")),
        # the spurious set-up (label correlated with the group in training): test_methods_data, test_groupdro
        "erm_spurious": _runs([], spurious),
        "groupdro_spurious": _runs(GROUPDRO, spurious),
        "reweight_spurious": _runs(REWEIGHT, spurious),
        "resample_spurious": _runs(OVERSAMPLE, spurious),
        # the rare-group set-up at 16 px: test_dbvae
        "erm_rare16": _runs([], EVIDENCE_16PX),
        "dbvae_rare16": _runs(["method=dbvae"], EVIDENCE_16PX, columns=("dbvae_mass[B]",)),
        # balanced groups (test_fair_mask), ERM at two ratios (test_train), a VAE alone (test_vae), ERM in
        # test_synthetic's own loop
        "fair_mask_balanced": test_fair_mask.measure_masking,
        "erm_rarer": test_train.measure_rarer,
        "vae_enrichment": lambda seed: test_vae.measure_enrichment(seed, vae_dir),
        "synthetic_rarity": test_synthetic.measure_rarity,
        # not asserted by any test (no robust effect; see test_adversarial.py, test_domain_independent.py),
        # measured for docs/methods.md's table
        "adversarial_rare": _runs(ADVERSARIAL),
        "adversarial_spurious": _runs(ADVERSARIAL_SPURIOUS, spurious),
        "domain_independent_spurious": _runs(["method=domain_independent"], spurious),
    }


ADVERSARIAL = ["method=adversarial", "method.input=logits", "method.adv_balance=true", "method.alpha=0.3"]
ADVERSARIAL_SPURIOUS = [*ADVERSARIAL[:-1], "method.alpha=0.03"]


def _seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def _measure(task):
    name, seed = task
    torch.set_num_threads(conftest.TEST_THREADS)
    start = time.time()
    return name, seed, _checks()[name](seed), time.time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,2 (default 0-4)")
    parser.add_argument("--only", default="", help="comma-separated check names (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="processes, one torch thread each (default 1)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    checks = _checks()
    names = [n for n in args.only.split(",") if n] or list(checks)
    unknown = sorted(set(names) - set(checks))
    if unknown:
        parser.error(f"unknown check(s) {unknown}; known: {', '.join(checks)}")
    seeds = _seeds(args.seeds)
    tasks = [(name, seed) for seed in seeds for name in names]
    found: dict = {name: {} for name in names}
    seconds: dict = {name: 0.0 for name in names}
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            done = list(pool.imap_unordered(_measure, tasks))
    else:
        done = [_measure(task) for task in tasks]
    for name, seed, row, took in done:
        found[name][seed] = row
        seconds[name] += took
        print(f"{name} seed {seed}: {took:.0f} s", file=sys.stderr)
    report = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "seeds": seeds, "runs_dir": str(evidence._root()),
        "checks": {}, "seconds": {name: round(s, 1) for name, s in seconds.items()},
    }
    for name in names:
        rows = [found[name][seed] for seed in seeds]
        keys = list(rows[0])
        report["checks"][name] = {
            key: {"per_seed": [round(float(r[key]), 4) for r in rows],
                  "mean": round(float(np.mean([r[key] for r in rows])), 4)} for key in keys}
    text = json.dumps(report, indent=1)
    # one line per metric: {"per_seed": [...], "mean": ...}
    text = re.sub(r'\{\s*"per_seed": \[([^\]]*)\],\s*"mean": ([-0-9.e]+)\s*\}',
                  lambda m: '{"per_seed": [' + ", ".join(m.group(1).split()).replace(",,", ",")
                  + '], "mean": ' + m.group(2) + '}', text)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
