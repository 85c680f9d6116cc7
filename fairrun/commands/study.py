"""``fairrun study``: a published study as one command.

``fairrun study --list`` names the studies; ``fairrun study NAME [--tiny] [--dry-run] [overrides ...]`` launches
``fairrun train -m +study=NAME [the study's tiny overrides] [overrides ...]``, whose end writes the study's report
into the sweep directory (:class:`fairrun.studies.report.StudyReport`). ``--dry-run`` prints the jobs, their
number, an estimate of the compute from a short calibration on this machine, and what a SLURM launch becomes.
"""
from __future__ import annotations

import shlex
import sys
import textwrap

from fairrun.core.errors import FairrunError, paragraph
from fairrun.core.validation import did_you_mean

USAGE = """usage: fairrun study --list
       fairrun study NAME [--tiny] [--dry-run [--no-estimate]] [--config-dir DIR] [hydra overrides ...]

Run a published study as one Hydra multirun (arms x its other axes x seeds) and write its report
(sweep.pkl, table.csv, comparisons.csv, report.txt, plots/) into the sweep directory when it ends.

options:
  --list         the studies: what each reproduces, its axes and its number of jobs
  --tiny         the same study on the built-in synthetic data, in miniature (about a minute on 2 CPU cores)
  --dry-run      print the jobs and "N jobs", an estimate of the compute time and the SLURM array it becomes;
                 run nothing
  --no-estimate  with --dry-run: skip the calibration (a few timed training steps per arm and model)
  --config-dir DIR  a config directory of your own: DIR/study/*.yaml and DIR/arm/*.yaml beside fairrun's

examples:
  fairrun study --list
  fairrun study imbalance_privacy --tiny
  fairrun study imbalance_privacy --dry-run dataset.root=/data/celeba
  fairrun study imbalance_privacy dataset.root=/data/celeba hydra/launcher=slurm
  fairrun study celeba_reweight dataset.root=/data/celeba seed=0,1,2,3,4   # a list replaces the study's own
  fairrun train -m +study=imbalance_privacy dataset.root=/data/celeba     # the same launch through train

A re-run of the same command skips the finished jobs, resumes unfinished ones and rewrites the report.
Docs: docs/studies/ (one page per study)."""

FLAGS = ("--list", "--tiny", "--dry-run", "--no-estimate")
CONFIG_DIR_FLAGS = ("--config-dir", "-cd")


def study_main(argv: list[str]) -> tuple[int, list[str] | None]:
    """``fairrun study``: (exit code, None) when it is done (help, --list, --dry-run, a one-paragraph error with
    code 2), or (0, the arguments of ``fairrun train``) for :func:`fairrun.cli.run_command` to launch."""
    try:
        return _study(argv)
    except FairrunError as err:
        print(paragraph(f"fairrun study: error: {err}"), file=sys.stderr)
        return 2, None


def _study(argv: list[str]) -> tuple[int, list[str] | None]:
    from fairrun.commands.preflight import split_argv
    from fairrun.studies import catalog

    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0, None
    flags = {a for a in argv if a in FLAGS}
    rest = [a for a in argv if a not in FLAGS]
    config_dirs = split_argv(rest)[0]
    if "--list" in flags:
        print(list_text(config_dirs))
        return 0, None
    if not rest or rest[0].startswith("-") or "=" in rest[0]:
        raise FairrunError(f"fairrun study needs the study's name first (got {rest[0] if rest else 'nothing'!r}): "
                           f"fairrun study NAME [--tiny] [--dry-run] [overrides], NAME one of "
                           f"{', '.join(catalog.study_names(config_dirs))} (fairrun study --list).")
    name, user = rest[0], split_argv(rest[1:])[1]
    passed = [a for a in rest[1:] if a not in user]  # --config-dir DIR / -cd DIR: handed to fairrun train too
    unknown = [a for a in passed if a.startswith("-") and a.split("=")[0] not in CONFIG_DIR_FLAGS]
    if unknown:
        hint = did_you_mean(unknown[0].split("=")[0], FLAGS + CONFIG_DIR_FLAGS)
        raise FairrunError(f"unknown option {unknown[0]!r}.{hint} fairrun study accepts {', '.join(FLAGS)}, "
                           f"--config-dir DIR and Hydra overrides (KEY=VALUE); see fairrun study --help.")
    tiny = "--tiny" in flags
    overrides = launch_overrides(name, user, tiny, config_dirs)
    if "--dry-run" in flags:
        print(dry_run_text(name, overrides, tiny, config_dirs, estimate="--no-estimate" not in flags))
        return 0, None
    if "--no-estimate" in flags:
        raise FairrunError("--no-estimate only applies to --dry-run (fairrun study NAME --dry-run --no-estimate).")
    launch = catalog.plan(name, overrides, config_dirs)
    check_dataset_root(launch, tiny, user)
    print(f"fairrun study {name}{' (tiny)' if tiny else ''}: {len(launch.jobs)} jobs into {launch.sweep_dir}; "
          f"the same as: fairrun train -m {' '.join(shlex.quote(o) for o in launch.overrides)}", flush=True)
    return 0, ["-m", *passed, *launch.overrides]


def _without_study(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith("+study=")]


def launch_overrides(name: str, user: list[str], tiny: bool, config_dirs: list[str]) -> list[str]:
    """The overrides after ``+study=NAME``: the study's ``tiny`` list (with --tiny), its sweep directory, then the
    user's, which win. The sweep directory is fixed, so the same command again resumes the same sweep: the study's
    own (``outputs/studies/<name>`` for fairrun's), else ``outputs/studies/<name>``; ``-tiny`` appended with
    --tiny."""
    from fairrun.studies import catalog

    base = catalog.plan(name, [], config_dirs)
    extra = [str(o) for o in base.study.tiny] if tiny else []
    if not any(o.startswith("hydra.sweep.dir=") for o in user):
        sweep_dir = base.sweep_dir if not str(base.sweep_dir).startswith("outputs/multirun/") \
            else f"outputs/studies/{name}"
        if tiny:
            extra.append(f"hydra.sweep.dir={sweep_dir}-tiny")
        elif sweep_dir != base.sweep_dir:
            extra.append(f"hydra.sweep.dir={sweep_dir}")
    return extra + list(user)


def missing_inputs(launch) -> list[str]:
    """The keys of ``study.needs`` that the launch leaves unset (null, empty or ``???``)."""
    from omegaconf import OmegaConf

    missing = []
    for key in launch.study.needs:
        value = OmegaConf.select(launch.config, str(key), default=None, throw_on_missing=False)
        if value in (None, "", "???"):
            missing.append(str(key))
    return missing


def check_dataset_root(launch, tiny: bool, user: list[str]) -> None:
    """A full-size study on data that is not built in needs its ``study.needs`` keys (``dataset.root``, a second
    dataset's root, a generator file): FairrunError naming each, where its files are described, and --tiny."""
    missing = [] if tiny else missing_inputs(launch)
    if not missing:
        return
    dataset = launch.config.dataset.name
    raise FairrunError(f"study {launch.name} at full size needs {', '.join(k + '=...' for k in missing)} "
                       f"(its data is not built in: the {dataset} files expected under dataset.root and where to get "
                       f"them are in docs/datasets.md; what each study.params key is: "
                       f"docs/studies/{launch.name}.md). To try the study first, run it in miniature on the "
                       f"built-in data: fairrun study {launch.name} --tiny; to see its jobs and compute: fairrun "
                       f"study {launch.name} --dry-run.")


def list_text(config_dirs: list[str]) -> str:
    """``fairrun study --list``: per study, what it reproduces, its job count at full size and its axes."""
    from fairrun.studies import catalog

    blocks = []
    for name in catalog.study_names(config_dirs):
        try:
            reproduces, jobs, axes = catalog.describe(name, config_dirs)
        except FairrunError as err:
            blocks.append(f"{name}\n    (cannot be composed: {err})")
            continue
        axes_text = " x ".join(f"{key} ({len(values)})" for key, values in axes.items())
        blocks.append("\n".join([name, textwrap.fill(reproduces, width=100, initial_indent="    ",
                                                     subsequent_indent="    "),
                                 f"    {jobs} jobs: {axes_text}"]))
    return "\n".join(["Studies (fairrun study NAME [--tiny] [--dry-run]; docs/studies/):", "", *blocks])


def dry_run_text(name: str, overrides: list[str], tiny: bool, config_dirs: list[str], estimate: bool) -> str:
    """``--dry-run``: the jobs (one line each), ``N jobs``, the compute estimate and the SLURM array."""
    from fairrun.studies import catalog

    launch = catalog.plan(name, overrides, config_dirs)
    lines = [paragraph(f"study {name}{' (tiny)' if tiny else ''}: {launch.study.reproduces}"),
             f"sweep directory: {launch.sweep_dir}",
             "axes: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in launch.axes.items()), ""]
    width = len(str(len(launch.jobs) - 1))
    shared = [o for o in _without_study(launch.jobs[0]) if all(o in job for job in launch.jobs)] \
        if len(launch.jobs) > 1 else []
    if shared:
        lines.append(paragraph(f"every job: +study={name} {' '.join(shared)}"))
    for number, job in enumerate(launch.jobs):
        lines.append(f"  {number:>{width}}: {' '.join(o for o in _without_study(job) if o not in shared)}")
    lines += ["", f"{len(launch.jobs)} jobs"]
    missing = [] if tiny else missing_inputs(launch)
    if missing:
        lines.append(f"note: the launch needs {', '.join(k + '=...' for k in missing)} "
                     f"(docs/studies/{name}.md).")
    if estimate:
        lines += estimate_lines(launch, config_dirs)
    lines.append(slurm_line(launch))
    return "\n".join(lines)


def estimate_lines(launch, config_dirs: list[str]) -> list[str]:
    """The compute estimate of every job (:func:`fairrun.studies.estimate.estimate`), from one composed config
    per distinct job apart from its seed (the seed does not change the cost)."""
    from fairrun.studies import catalog
    from fairrun.studies.estimate import estimate

    configs, by_key = [], {}
    for job in launch.jobs:
        key = tuple(o for o in job if not o.startswith("seed="))
        if key not in by_key:
            by_key[key] = catalog.compose_job(job, config_dirs)
        configs.append(by_key[key])
    try:
        result = estimate(configs)
    except FairrunError as err:
        return ["", paragraph(f"estimate: not available ({err})")]
    return ["", result.text()]


def slurm_line(launch) -> str:
    """What the launch becomes on a cluster with ``hydra/launcher=slurm`` (conf/hydra/launcher/slurm.yaml)."""
    import yaml
    from importlib import resources

    settings = yaml.safe_load((resources.files("fairrun.conf") / "hydra" / "launcher" / "slurm.yaml").read_text())
    parallel = settings.get("array_parallelism")
    return paragraph(f"on a cluster: add hydra/launcher=slurm and the {len(launch.jobs)} jobs become one SLURM job "
                     f"array of {len(launch.jobs)} tasks, at most {parallel} running at once "
                     f"(hydra.launcher.array_parallelism), each with {settings.get('gpus_per_node')} GPU, "
                     f"{settings.get('cpus_per_task')} CPUs and a {settings.get('timeout_min')}-minute limit "
                     f"(requeued from checkpoints/last.pt up to {settings.get('max_num_timeout')} times).")
