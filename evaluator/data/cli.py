"""`leaderboard data …`: synthetic data, raw organiser files, prepared arrays. Heavy imports stay
inside the command functions so that `leaderboard --help` stays fast."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

data_app = typer.Typer(
    help="Prepare challenge data: synthetic, raw organiser files, arrays.", no_args_is_help=True
)


@contextmanager
def _refusals() -> Iterator[None]:
    """Bad input ends the command with its message and exit status 1, not a traceback."""
    from evaluator.data.errors import DataFormatError

    try:
        yield
    except (DataFormatError, FileExistsError, FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="folder to write AliExpress_{CC}/ into"),
    countries: str = typer.Option("NL,ES,FR,US", "--countries", help="comma-separated codes"),
    train_rows: int = typer.Option(20_000, "--train-rows", min=0, help="rows of each train.csv"),
    test_rows: int = typer.Option(
        10_000,
        "--test-rows",
        min=0,
        help="rows of each test.csv; at real rates ~0.07 % convert, so CVR AUCs need ~150k+",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="same seed, same bytes"),
) -> None:
    """Write synthetic train.csv and test.csv per country in the processed format."""
    from evaluator.data.synth import write_synthetic
    from evaluator.schema import parse_country

    with _refusals():
        codes = [parse_country(code) for code in countries.split(",") if code.strip()]
        if not codes:
            raise ValueError("--countries is empty")
        write_synthetic(out, codes, train_rows, test_rows, seed)
    for code in codes:
        typer.echo(str(out / f"AliExpress_{code}"))


@data_app.command("process-raw")
def process_raw(
    raw: Path = typer.Option(..., "--raw", help="folder with {cc}_user_*.csv and {cc}_item_*.csv"),
    country: str = typer.Option(..., "--country", help="NL, ES, FR or US"),
    out: Path = typer.Option(..., "--out", help="folder for the processed train.csv and test.csv"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Join the organisers' raw user and item files into processed train.csv and test.csv."""
    from evaluator.data.raw import process_raw as run

    with _refusals():
        reports = run(raw, country, out, progress=_show_progress(quiet))
    for report in reports:
        typer.echo(
            f"{report.path}: {report.rows_written} rows ({report.item_rows} item lines, "
            f"{report.items_without_user} without a user row; {report.user_rows} user rows)"
        )


@data_app.command("prepare")
def prepare(
    csv: Path = typer.Option(..., "--csv", help="a processed test.csv (or train.csv)"),
    out: Path = typer.Option(..., "--out", help="the prepared folder to write (replaced)"),
    salt: str | None = typer.Option(
        None, "--salt", help="public/private split salt (default: the documented one)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Validate a processed CSV and write its prepared folder; prints its meta.json."""
    from evaluator.data.prepare import prepare_csv
    from evaluator.data.split import DEFAULT_SPLIT_SALT

    with _refusals():
        meta = prepare_csv(
            csv, out, progress=_show_progress(quiet), salt=salt or DEFAULT_SPLIT_SALT
        )
    typer.echo(meta.to_json())
