"""hydra/launcher=slurm_local leaves no folder named after a template (`slurm_logs/%j`)."""
from __future__ import annotations

from tests.conftest import TINY, run_fairrun


def test_slurm_local_leaves_no_template_folder(tmp_path):
    proc = run_fairrun("train", "-m", *TINY, "trainer.epochs=1", "eval.bootstrap=0",
                       "hydra/launcher=slurm_local", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    assert (sweep / "0" / "done").exists()
    templates = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "%" in p.name]
    assert not templates, templates
    assert list(sweep.glob("slurm_logs/*_0_log.out")), "submitit's job log, as slurm_local.yaml says"
