"""Blum & Hardt's boosting attack on the public board, against exact and ladder feedback.

    .venv/bin/python benchmarks/bench_ladder.py [--rows 200000] [--ks 50,200,1000] [--seed 0]

On the synthetic NL data (`evaluator.data.synth`, prepared like the service's test sets), an
attacker holding a baseline prediction file (logistic regression on the numerical features)
submits K random perturbations of it (Gaussian noise on the logits of CTR and CVR), keeps those
that raised its public score as the feedback shows it, and submits their majority vote (per row,
the sign of the kept perturbations' sum). The feedback is either

  exact:  the public mean AUC (CTR, CVR, CTCVR) of every submission; "raised" = above the
          baseline's;
  ladder: the service's own rule, `app.phases.ladder.decide` on `public_columns` (one-sided
          paired DeLong per task on the public rows, Bonferroni over the tasks, level 0.05):
          a figure is released only when significantly better than the team's shown best;
          "raised" = released.

Reported per mode and K: the attacker's public gain as it is shown (exact: the vote's public
mean AUC minus the baseline's; ladder: the team's shown best minus the baseline's) and the
private mean AUC of what it would field (exact: the vote; ladder: its shown best), next to an
honest team that submits one better model (more data, categorical features too). Expected:
under exact feedback the attack climbs the public board without a private gain; under the
ladder it does not climb, while the honest improvement is released.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from app.phases.ladder import decide, public_columns
from evaluator.data.prepare import prepare_csv
from evaluator.data.prepared import PreparedData
from evaluator.data.synth import write_synthetic
from evaluator.metrics import auc_with_ci
from evaluator.predictions import Predictions
from evaluator.schema import TASKS
from evaluator.tasks import task_rows

COUNTRY = "NL"
SIGMA = 0.02  # the perturbations' logit noise: small, so that chance can raise the public AUC
LEVEL = 0.05

FloatArray = npt.NDArray[np.float64]


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass(frozen=True)
class Logits:
    ctr: FloatArray
    cvr: FloatArray

    def predictions(self) -> Predictions:
        ctr, cvr = _sigmoid(self.ctr), _sigmoid(self.cvr)
        return Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr)


class Scorer:
    """Mean AUC over the three tasks on the public or the private rows."""

    def __init__(self, data: PreparedData) -> None:
        self.data = data
        click = np.asarray(data.click)
        conversion = np.asarray(data.conversion)
        public = np.asarray(data.public, dtype=bool)
        self.columns: dict[str, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]]] = {
            "public": [], "private": []}
        for task in TASKS:
            rows = task_rows(task, click, conversion)
            in_public = rows.take(public)
            for split, keep in (("public", in_public), ("private", ~in_public)):
                self.columns[split].append((rows.indices()[keep],
                                            np.asarray(rows.labels)[keep].astype(np.int8)))

    def mean_auc(self, predictions: Predictions, split: str) -> float:
        aucs = []
        for task, (index, labels) in zip(TASKS, self.columns[split], strict=True):
            auc = auc_with_ci(labels, np.asarray(getattr(predictions, task))[index]).auc
            assert auc is not None
            aucs.append(auc)
        return float(np.mean(aucs))


def _features(frame: pd.DataFrame, categorical: bool,
              encoder: OneHotEncoder | None = None) -> tuple[npt.NDArray[np.float64],
                                                           OneHotEncoder | None]:
    numerical = frame[[c for c in frame.columns if c.startswith("numerical_")]].to_numpy(float)
    if not categorical:
        return numerical, None
    cats = frame[[c for c in frame.columns if c.startswith("categorical_")]].to_numpy()
    if encoder is None:
        encoder = OneHotEncoder(handle_unknown="ignore", min_frequency=20)
        encoder.fit(cats)
    onehot = encoder.transform(cats).toarray()
    return np.hstack([numerical, onehot]), encoder


def fit_model(train: pd.DataFrame, test: pd.DataFrame, categorical: bool) -> Logits:
    x_train, encoder = _features(train, categorical)
    x_test, _ = _features(test, categorical, encoder)
    click = train["click"].to_numpy()
    ctr = LogisticRegression(max_iter=300, C=0.5).fit(x_train, click)
    clicked = click == 1
    cvr = LogisticRegression(max_iter=300, C=0.5).fit(x_train[clicked],
                                                      train["conversion"].to_numpy()[clicked])
    return Logits(ctr=np.asarray(ctr.decision_function(x_test), dtype=np.float64),
                  cvr=np.asarray(cvr.decision_function(x_test), dtype=np.float64))


@dataclass(frozen=True)
class Outcome:
    kept: int
    shown_gain: float
    private: float
    vote_public_gain: float


def attack(mode: str, k: int, base: Logits, scorer: Scorer, data: PreparedData,
           rng: np.random.Generator, sigma: float = SIGMA) -> Outcome:
    base_pred = base.predictions()
    base_public = scorer.mean_auc(base_pred, "public")
    shown_pred, shown_public = base_pred, base_public  # the team's shown best (ladder)
    n = base.ctr.size
    total_ctr = np.zeros(n)
    total_cvr = np.zeros(n)
    kept = 0
    for _ in range(k):
        noise_ctr, noise_cvr = rng.normal(size=n), rng.normal(size=n)
        attempt = Logits(base.ctr + sigma * noise_ctr, base.cvr + sigma * noise_cvr)
        predictions = attempt.predictions()
        if mode == "exact":
            raised = scorer.mean_auc(predictions, "public") > base_public
        else:
            raised = decide(public_columns(data, predictions, shown_pred), LEVEL).released
            if raised:
                shown_pred, shown_public = predictions, scorer.mean_auc(predictions, "public")
        if raised:
            kept += 1
            total_ctr += noise_ctr
            total_cvr += noise_cvr
    vote = Logits(base.ctr + sigma * np.sign(total_ctr),
                  base.cvr + sigma * np.sign(total_cvr)).predictions()
    vote_public = scorer.mean_auc(vote, "public")
    if mode == "exact":
        return Outcome(kept=kept, shown_gain=vote_public - base_public,
                       private=scorer.mean_auc(vote, "private"),
                       vote_public_gain=vote_public - base_public)
    if kept and decide(public_columns(data, vote, shown_pred), LEVEL).released:
        shown_pred, shown_public = vote, vote_public
    return Outcome(kept=kept, shown_gain=shown_public - base_public,
                   private=scorer.mean_auc(shown_pred, "private"),
                   vote_public_gain=vote_public - base_public)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="test rows")
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--ks", default="50,200,1000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sigma", type=float, default=SIGMA, help="logit noise")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic(root, [COUNTRY], args.train_rows, args.rows, args.seed)
        prepare_csv(root / f"AliExpress_{COUNTRY}" / "test.csv", root / "prepared" / COUNTRY)
        data = PreparedData.open(root / "prepared" / COUNTRY)
        train = pd.read_csv(root / f"AliExpress_{COUNTRY}" / "train.csv")
        test = pd.read_csv(root / f"AliExpress_{COUNTRY}" / "test.csv")
        scorer = Scorer(data)
        base = fit_model(train.iloc[: max(2000, args.train_rows // 5)], test, categorical=False)
        honest = fit_model(train, test, categorical=True)
        base_pred, honest_pred = base.predictions(), honest.predictions()
        base_public = scorer.mean_auc(base_pred, "public")
        base_private = scorer.mean_auc(base_pred, "private")
        honest_gain = (scorer.mean_auc(honest_pred, "public") - base_public,
                       scorer.mean_auc(honest_pred, "private") - base_private)
        honest_ladder = decide(public_columns(data, honest_pred, base_pred), LEVEL)
        public = np.asarray(data.public, dtype=bool)
        clicks = np.asarray(data.click, dtype=bool)
        print(f"synthetic {COUNTRY}: {data.n_rows:,} test rows ({int(public.sum()):,} public), "
              f"{int(clicks.sum()):,} clicks, "
              f"{int(np.asarray(data.conversion, dtype=bool).sum()):,} purchases; "
              f"noise sigma {args.sigma} on logits; ladder level {LEVEL}")
        print(f"baseline: public mean AUC {base_public:.4f}, private {base_private:.4f}")
        print(f"honest team (one better model): public gain {honest_gain[0]:+.4f}, private "
              f"gain {honest_gain[1]:+.4f}; ladder: "
              f"{'released' if honest_ladder.released else 'withheld'} "
              f"(p = {honest_ladder.p_value:.2g})")
        print()
        print("| feedback | K | kept | attacker's shown public gain | attacker's private "
              "change | vote's true public gain | honest public / private gain |")
        print("|---|---|---|---|---|---|---|")
        for mode in ("exact", "ladder"):
            for k in ks:
                rng = np.random.default_rng(args.seed * 1000 + k)
                out = attack(mode, k, base, scorer, data, rng, args.sigma)
                print(f"| {mode} | {k} | {out.kept} | {out.shown_gain:+.4f} | "
                      f"{out.private - base_private:+.4f} | {out.vote_public_gain:+.4f} | "
                      f"{honest_gain[0]:+.4f} / {honest_gain[1]:+.4f} |", flush=True)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
