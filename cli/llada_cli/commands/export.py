"""``llada export``: a model -> an ONNX edge bundle (``llada_export.export``; needs torch and onnx)."""

from __future__ import annotations

import click

GRAPH_CHOICES = ("logits", "greedy", "cache", "cache_greedy")


def _graphs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    names = [n.strip() for v in value for n in v.split(",") if n.strip()]
    bad = [n for n in names if n not in GRAPH_CHOICES]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not one of {', '.join(GRAPH_CHOICES)}", ctx, param)
    return tuple(names) or GRAPH_CHOICES


@click.command(short_help="Export a model to an ONNX edge bundle (graphs, tokenizer, sidecar).")
@click.argument("model", metavar="MODEL")
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False))
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp32",
    show_default=True,
    help="fp16 for GPUs; int8 = dynamic quantisation of the weight MatMuls, for CPUs.",
)
@click.option(
    "--graphs",
    multiple=True,
    callback=_graphs,
    metavar="LIST",
    help="Comma-separated graph groups: logits, greedy, cache, cache_greedy. [default: all]",
)
@click.option("--opset", type=click.IntRange(7, 23), default=20, show_default=True, help="ONNX opset.")
@click.option("--eot-token-id", type=int, default=None, help="EOT id for checkpoints without tokenizer files.")
@click.option(
    "--external-data/--no-external-data", default=None, help="Weights in .onnx.data files [default: above 2 GB]."
)
@click.option("--threads", type=click.IntRange(1), default=None, help="torch/onnxruntime threads during the export.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace OUT if it is an llada bundle (anything else is refused; an empty OUT needs no flag).",
)
def export(
    model: str,
    out: str,
    precision: str,
    graphs: tuple[str, ...],
    opset: int,
    eot_token_id: int | None,
    external_data: bool | None,
    threads: int | None,
    overwrite: bool,
) -> None:
    """Export MODEL (a checkpoint directory, a cached Hub repo id, or llada-tiny-kb) to the edge bundle
    directory OUT: one ONNX graph per entry of --graphs, the tokenizer files and llada_onnx.json (IO
    names and dims, opset, precision, special ids, defaults, and the parity figures of a comparison
    with PyTorch run at the end). Load it with `-m OUT` or LLaDA.from_pretrained(OUT); it runs with
    `pip install 'llada-sdk[onnx]'` and no torch. The bundle is built beside OUT and moved into place
    only when the export and its parity check succeed: a failed or interrupted export leaves OUT as it
    was. OUT must not be the source model folder or the current directory (nor contain them).

    \b
    Examples:
      llada export llada-tiny-kb ./llada-kb-onnx
      llada export ./LLaDA-8B-Instruct ./llada-8b-fp16 --precision fp16 --graphs greedy,cache_greedy
      llada export tests/fixtures/llada-tiny ./tiny-onnx --eot-token-id 348
    """
    from llada_export.exporter import export as run_export
    from llada_sdk.loading import BUNDLED_MODEL

    result = run_export(
        None if model == BUNDLED_MODEL else model,
        out,
        precision=precision,
        graphs=graphs,
        opset=opset,
        eot_token_id=eot_token_id,
        external_data=external_data,
        threads=threads,
        overwrite=overwrite,
        log=lambda line: click.echo(line, err=True),
    )
    click.echo(f"{result.folder} ({precision}, {len(result.sidecar.graphs)} graphs, {result.seconds:.0f} s)")
