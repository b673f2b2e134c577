"""A device's score at an evaluation tick: the task's main metric on its test batch.

- classification: accuracy, the share of samples whose argmax is the label;
- recommendation: AUC of the click log-odds against the click labels
  (``simulator.catalog.ranking_metrics.auc``); averaged over devices it is the
  user-level GAUC with equal weights. A batch of one class has no AUC: the
  device is left out of that tick, like a device that failed to answer.
  Beside it, HR@k and NDCG@k of the same served model on ranking cases
  (the clicked item among 100 unclicked ones; ``ranking_scores``).

The run folder keeps the name ``acc_*`` for this score whatever the task
(the summary's columns are a stable interface); reports name the metric.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from simulator.catalog.ranking_metrics import auc, ranking_report


def device_score(task: str, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The task's main metric for one device's batch (``nan`` where it is undefined)."""
    if task == "recommendation":
        return auc(_finite_log_odds(logits), labels.numpy())
    return int((logits.argmax(dim=1) == labels).sum()) / len(labels)


def ranking_scores(model: torch.nn.Module, cases: list[torch.Tensor]) -> dict[str, float]:
    """HR@k and NDCG@k of the served model over a device's ranking cases.

    Each case's rows share one history; the first row's candidate is the
    clicked item. Candidates are ranked by click log-odds (ties against the
    clicked item, see ``simulator.catalog.ranking_metrics``).
    """
    if not cases:
        return {}
    logits = model(torch.cat(cases))
    log_odds = _finite_log_odds(logits).reshape(len(cases), -1)
    return ranking_report(log_odds[:, 0], log_odds[:, 1:])


def _finite_log_odds(logits: torch.Tensor) -> np.ndarray:
    """Click log-odds, with a diverged model's NaN read as 0 and infinities as the extremes.

    A model whose training diverged still gets a score (a poor one: NaN
    outputs tie with each other), rather than stopping the run.
    """
    log_odds = (logits[:, 1] - logits[:, 0]).double().numpy()
    return np.nan_to_num(log_odds, nan=0.0, posinf=1e300, neginf=-1e300)


def defined(score: float) -> bool:
    """Whether a device's score counts at its tick."""
    return not math.isnan(score)
