"""`tritonbench tune`: the serving configuration with the most throughput whose p99 stays within a budget."""

from __future__ import annotations

from pathlib import Path

import click

from client.experiments.tune_search import SEARCHES
from client.experiments.tune_settings import TUNE_MEASUREMENT


@click.command()
@click.option("--model", default="minilm", show_default=True, help="model folder, or 'minilm' (the bundled MiniLM)")
@click.option("--task", default="feature-extraction", show_default=True)
@click.option("--gpu", default="cpu", show_default=True, help="GPU profile: the start of the search")
@click.option("--engine", default="python-onnxruntime", show_default=True, help="python-onnxruntime or python-torch")
@click.option("--precision", default="fp32", show_default=True)
@click.option("--kernels", default="fused", show_default=True, help="python-torch's kernels (make-repo --kernels)")
@click.option("--texts", type=click.Path(path_type=Path), help="your texts, one per line, sent in their proportions")
@click.option("--mix", type=float, help="instead of --texts: built-in texts, this fraction short, the rest long")
@click.option("--mix-count", type=click.IntRange(min=1), default=1000, show_default=True, help="texts of --mix")
@click.option("--p99-ms", type=float, help="the latency budget every measured level must keep  [required]")
@click.option("--search", type=click.Choice(SEARCHES), default="quick", show_default=True,
              help="quick: climb from the profile's defaults; brute: the grid, nearest the defaults first")  # fmt: skip
@click.option("--budget-minutes", type=float, help="start no candidate after this many minutes")
@click.option("--max-candidates", type=click.IntRange(min=1), help="stop once the store holds this many candidates")
@click.option("--dimension", "dimensions", multiple=True, metavar="NAME=V1,V2",
              help="search only these values of a dimension (the default's stays), e.g. max_batch_size=8,16,32; "
              "dimensions: single_model (ensemble,single), model_instances, max_queue_delay_us, max_batch_size, "
              "preferred (none,ladder,powers), buckets (profile,q2,q4,q8), tokenizer_instances")  # fmt: skip
@click.option("--name", default="tuned", show_default=True, help="the chosen deployment's name in OUT/repo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/tune"), show_default=True,
              help="the store (tune.jsonl, points.jsonl), the repository, the report and the logs")  # fmt: skip
@click.option("--client-batch", type=click.IntRange(min=1), default=1, show_default=True, help="texts per request")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True)
@click.option("--max-concurrency", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--max-error-rate", type=float, default=0.001, show_default=True, help="errors a level may have")
@click.option("--min-gain", type=float, default=0.03, show_default=True, help="what a quick-search move must gain")
@click.option("--window-s", type=float, default=TUNE_MEASUREMENT.window_s, show_default=True)
@click.option("--warmup-s", type=float, default=TUNE_MEASUREMENT.warmup_s, show_default=True)
@click.option("--no-confirm", is_flag=True, help="do not measure the default and the chosen one again at the end")
@click.option("--no-validate", is_flag=True, help="make-repo without the fidelity gate")
@click.option("--report-only", is_flag=True, help="write the report from OUT's store; measure nothing")
def tune(
    model: str,
    task: str,
    gpu: str,
    engine: str,
    precision: str,
    kernels: str,
    texts: Path | None,
    mix: float | None,
    mix_count: int,
    p99_ms: float | None,
    search: str,
    budget_minutes: float | None,
    max_candidates: int | None,
    dimensions: tuple[str, ...],
    name: str,
    out: Path,
    client_batch: int,
    protocol: str,
    max_concurrency: int,
    max_error_rate: float,
    min_gain: float,
    window_s: float,
    warmup_s: float,
    no_confirm: bool,
    no_validate: bool,
    report_only: bool,
) -> None:
    """Search the serving configuration with the most throughput whose p99 stays within --p99-ms, on your texts.

    Every candidate is built by make-repo's planning, loaded into one running tritonserver through its repository
    API and measured by the sweep code; OUT/tune.jsonl keeps each as it finishes, so the same command resumes.
    The chosen configuration is written to OUT/repo as NAME, with the command that rebuilds it and OUT/report.
    """
    import dataclasses

    from client.experiments.tune_records import tune_store
    from client.experiments.tune_report import write_tune_report
    from client.experiments.tune_run import TunePaths, outcome_text, run_tune
    from client.experiments.tune_settings import TuneSettings
    from client.experiments.tune_space import parse_restriction
    from client.targets.texts import builtin_mix, read_texts

    paths = TunePaths(out)
    if report_only:
        files = write_tune_report(tune_store(out).load(), paths.report)
        click.echo(f"report: {files.markdown}, {files.csv}" + (f", {files.chart.path}" if files.chart.drawn else ""))
        return
    if p99_ms is None:
        raise click.UsageError("give the latency budget: --p99-ms")
    if (texts is None) == (mix is None):
        raise click.UsageError("give --texts FILE (one text per line) or --mix FRACTION (the built-in mix)")
    if texts is not None:
        chosen_texts, source = read_texts(texts), f"file {texts}"
    else:
        assert mix is not None
        chosen_texts, source = builtin_mix(mix, mix_count), f"built-in mix, {mix:.0%} one-sentence texts"
    try:
        measurement = dataclasses.replace(TUNE_MEASUREMENT, window_s=window_s, warmup_s=warmup_s)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = TuneSettings(
        model, task, gpu, engine, chosen_texts, source, p99_ms, search, budget_minutes, max_candidates, name,
        precision, kernels, not no_validate, client_batch, protocol, measurement, max_concurrency, max_error_rate,
        min_gain, tuple(parse_restriction(d) for d in dimensions), not no_confirm,
    )  # fmt: skip
    result = run_tune(settings, paths, echo=click.echo)
    click.echo(f"chosen: {result.chosen.label()}")
    click.echo(f"  {outcome_text(result.outcomes[result.chosen])}; the default profile's configuration: "
               f"{outcome_text(result.outcomes[result.default])}")  # fmt: skip
    click.echo(f"  {len(result.outcomes)} candidates, {result.seconds / 60:.1f} min, {result.stopped}")
    click.echo(f"repository: {result.repo} (its manifest records the choice)")
    click.echo(f"rebuild: {result.command}")
    click.echo(f"report: {result.report.markdown}")
