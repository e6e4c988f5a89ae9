"""Ratings from blind A/B votes: online Elo, Bradley-Terry maximum likelihood, bootstrap intervals, win rates.

A battle is `(left_model, right_model, choice)` with `choice` one of `VOTE_CHOICES`. A tie and a "both bad" vote
both score half a win for each side, as the LMSYS Chatbot Arena scores "tie (bothbad)": the voter found neither
answer better than the other, which is what a tie means to a rating. (Both-bad votes are still kept apart where
that matters: they never become preference pairs, and the leaderboard counts them in a column of their own.)

Pure math on plain tuples (numpy only); the plotly figures at the end draw what these functions return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from workbench.arena.votes import VOTE_CHOICES
from workbench.i18n import text
from workbench.plots import PALETTE, _layout, annotate_empty

Battle = tuple[str, str, str]

# Score of the left side; the right side gets 1 - score.
_SCORE = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}
# Bradley-Terry prior: every model also "played" BT_PRIOR wins and BT_PRIOR losses against a virtual model of
# average strength. Without it an undefeated model's rating runs off to infinity; this small it stays finite
# (about +1400 after a 3-0 record) yet moves a 3-of-4 record's gap by less than a tenth of a point.
BT_PRIOR = 1e-3


def _check_battle(index: int, battle: Any) -> Battle:
    if not isinstance(battle, Sequence) or isinstance(battle, str) or len(battle) != 3:
        raise ValueError(f"battle {index} is {battle!r}; a battle is a (left_model, right_model, choice) triple")
    left, right, choice = battle
    if choice not in _SCORE:
        raise ValueError(f"unknown vote choice {choice!r} in battle {index} ({left} vs {right}); "
                         f"choose one of: {', '.join(VOTE_CHOICES)}")
    if not isinstance(left, str) or not isinstance(right, str) or not left or not right:
        raise ValueError(f"battle {index} has model labels {left!r} and {right!r}; both must be non-empty text")
    if left == right:
        raise ValueError(f"battle {index} pits {left!r} against itself; a battle needs two different models")
    return left, right, choice


def check_battles(battles: Sequence[Battle]) -> list[Battle]:
    """The battles as a list of (left, right, choice) triples; raises ValueError naming the first bad one."""
    return [_check_battle(i, battle) for i, battle in enumerate(battles)]


def model_labels(battles: Sequence[Battle]) -> list[str]:
    """Every model that fought at least once, sorted by name."""
    return sorted({m for left, right, _ in battles for m in (left, right)})


def _encode(battles: list[Battle], labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays of the left and right models and the left side's score, one entry per battle."""
    index = {m: i for i, m in enumerate(labels)}
    left = np.array([index[b[0]] for b in battles], dtype=int)
    right = np.array([index[b[1]] for b in battles], dtype=int)
    score = np.array([_SCORE[b[2]] for b in battles], dtype=float)
    return left, right, score


def _check_order(order: Sequence[int], count: int) -> list[int]:
    order = list(order)
    if sorted(order) != list(range(count)):
        raise ValueError(f"order must list each battle index 0..{count - 1} exactly once, got {order[:20]!r}"
                         f"{' ...' if len(order) > 20 else ''}; pass None to play the battles as given")
    return order


def elo(battles: Sequence[Battle], k: float = 4.0, scale: float = 400.0, base: float = 1000.0,
        order: Sequence[int] | None = None) -> dict[str, float]:
    """Online Elo: every model starts at `base` and each battle moves both sides by k * (score - expected).

    Elo depends on the order of the battles; `order` (a permutation of the battle indices) replays them in another
    order, None plays them as given. The small default k (4, as the LMSYS arena) keeps late votes from dominating.
    """
    battles = check_battles(battles)
    ratings = {m: float(base) for m in model_labels(battles)}
    for i in range(len(battles)) if order is None else _check_order(order, len(battles)):
        left, right, choice = battles[i]
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[right] - ratings[left]) / scale))
        delta = k * (_SCORE[choice] - expected)
        ratings[left] += delta
        ratings[right] -= delta
    return ratings


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x) without overflow warnings


def _neg_log_likelihood(theta: np.ndarray, scores: np.ndarray, prior: float) -> float:
    diff = theta[:, None] - theta[None, :]
    # log(sigmoid(x)) = -log(1 + e^-x), computed stably with logaddexp.
    fit = float(np.sum(scores * np.logaddexp(0.0, -diff)))
    return fit + prior * float(np.sum(np.logaddexp(0.0, -theta) + np.logaddexp(0.0, theta)))


def _fit_log_strengths(scores: np.ndarray, prior: float, max_iter: int, tol: float) -> np.ndarray:
    """Maximise the Bradley-Terry likelihood by Newton's method with a backtracking line search.

    scores[i, j] is what model i scored against j (wins plus half the ties). With the prior the objective is
    strictly convex, so this converges to the single optimum, in a dozen steps on arena-sized data.
    """
    games = scores + scores.T
    theta = np.zeros(len(scores))
    loss = _neg_log_likelihood(theta, scores, prior)
    for _ in range(max_iter):
        p = _sigmoid(theta[:, None] - theta[None, :])
        gradient = (scores - games * p).sum(axis=1) + prior * (1.0 - 2.0 * _sigmoid(theta))
        curvature = games * p * (1.0 - p)
        hessian = np.diag(curvature.sum(axis=1) + 2.0 * prior * _sigmoid(theta) * _sigmoid(-theta)) - curvature
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-8:
            new_loss = _neg_log_likelihood(theta + size * step, scores, prior)
            if new_loss <= loss + 1e-12:
                break
            size /= 2.0
        theta, loss = theta + size * step, new_loss
        if np.max(np.abs(size * step)) < tol:
            break
    return theta


def _score_matrix(left: np.ndarray, right: np.ndarray, score: np.ndarray, size: int) -> np.ndarray:
    scores = np.zeros((size, size))
    np.add.at(scores, (left, right), score)
    np.add.at(scores, (right, left), 1.0 - score)
    return scores


def _to_rating_scale(theta: np.ndarray, scale: float, base: float) -> np.ndarray:
    ratings = scale * theta / math.log(10.0)  # strength e^theta -> scale * log10(strength)
    return ratings - ratings.mean() + base


def bradley_terry(battles: Sequence[Battle], scale: float = 400.0, base: float = 1000.0, max_iter: int = 100,
                  tol: float = 1e-9, prior: float = BT_PRIOR) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale, order-free; the mean rating is `base`.

    P(i beats j) = s_i / (s_i + s_j); a rating is base + scale * log10(s), shifted so the ratings average `base`.
    Ties (and both-bad votes) count as half a win for each side. `prior` is explained at BT_PRIOR.
    """
    battles = check_battles(battles)
    labels = model_labels(battles)
    if not labels:
        return {}
    scores = _score_matrix(*_encode(battles, labels), len(labels))
    ratings = _to_rating_scale(_fit_log_strengths(scores, prior, max_iter, tol), scale, base)
    return {m: float(r) for m, r in zip(labels, ratings)}


def _bt_round(battles: list[Battle], labels: list[str], picks: np.ndarray, scale: float, base: float) -> np.ndarray:
    """BT ratings of one resample; models that drew no battle get NaN and stay out of the mean."""
    left, right, score = (part[picks] for part in _encode(battles, labels))
    present = np.zeros(len(labels), dtype=bool)
    present[left] = present[right] = True
    scores = _score_matrix(left, right, score, len(labels))[np.ix_(present, present)]
    out = np.full(len(labels), np.nan)
    out[present] = _to_rating_scale(_fit_log_strengths(scores, BT_PRIOR, 100, 1e-9), scale, base)
    return out


def _elo_round(battles: list[Battle], labels: list[str], picks: np.ndarray) -> np.ndarray:
    ratings = elo([battles[i] for i in picks])
    return np.array([ratings.get(m, np.nan) for m in labels])


def bootstrap(battles: Sequence[Battle], method: str = "bt", rounds: int = 200,
              seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """(median, 2.5 % and 97.5 % percentiles) of each model's rating over `rounds` resamples of the battles.

    Each round draws len(battles) battles with replacement (seeded, so the same seed gives the same answer).
    Models missing from a round are left out of it; their interval comes from the rounds they are in.
    """
    if method not in ("bt", "elo"):
        raise ValueError(f"unknown rating method {method!r}; choose 'bt' (Bradley-Terry) or 'elo'")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}; 200 is a common choice")
    battles = check_battles(battles)
    labels = model_labels(battles)
    if not labels:
        return {}
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, len(labels)))
    for r in range(rounds):
        picks = rng.integers(0, len(battles), size=len(battles))
        samples[r] = _bt_round(battles, labels, picks, 400.0, 1000.0) if method == "bt" else \
            _elo_round(battles, labels, picks)
    median, low, high = np.nanpercentile(samples, [50.0, 2.5, 97.5], axis=0)
    return {m: (float(median[i]), float(low[i]), float(high[i])) for i, m in enumerate(labels)}


def battle_counts(battles: Sequence[Battle], labels: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """How many battles (of any outcome) each pair of models fought; symmetric, zero on the diagonal."""
    battles = check_battles(battles)
    labels = list(labels) if labels is not None else model_labels(battles)
    index = {m: i for i, m in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for left, right, _ in battles:
        if left in index and right in index:
            counts[index[left], index[right]] += 1
            counts[index[right], index[left]] += 1
    return labels, counts


def win_rate_matrix(battles: Sequence[Battle],
                    labels: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Share of the decisive battles in which the row model beat the column model.

    Ties and both-bad votes are left out. NaN where two models never had a decisive battle (and on the diagonal).
    `labels` picks and orders the models (e.g. leaderboard order); default: every model, sorted by name.
    """
    battles = check_battles(battles)
    labels = list(labels) if labels is not None else model_labels(battles)
    index = {m: i for i, m in enumerate(labels)}
    wins = np.zeros((len(labels), len(labels)))
    for left, right, choice in battles:
        if choice in ("left", "right") and left in index and right in index:
            winner, loser = (left, right) if choice == "left" else (right, left)
            wins[index[winner], index[loser]] += 1
    decisive = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(decisive > 0, wins / decisive, np.nan)
    return labels, rates


def _record(battles: list[Battle]) -> dict[str, dict[str, int]]:
    """Per model: battles, wins, losses, ties and both_bad."""
    record = {m: dict.fromkeys(("battles", "wins", "losses", "ties", "both_bad"), 0) for m in model_labels(battles)}
    for left, right, choice in battles:
        for model in (left, right):
            record[model]["battles"] += 1
        if choice in ("left", "right"):
            winner, loser = (left, right) if choice == "left" else (right, left)
            record[winner]["wins"] += 1
            record[loser]["losses"] += 1
        else:
            key = "ties" if choice == "tie" else "both_bad"
            record[left][key] += 1
            record[right][key] += 1
    return record


def leaderboard(battles: Sequence[Battle], rounds: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """One row per model, best Bradley-Terry rating first.

    Keys: model, bt, bt_low, bt_high (95 % bootstrap interval; None when rounds is 0), elo, battles, wins,
    losses, ties, both_bad. wins + losses + ties + both_bad == battles.
    """
    battles = check_battles(battles)
    bt, online = bradley_terry(battles), elo(battles)
    spread = bootstrap(battles, "bt", rounds, seed) if rounds > 0 and battles else {}
    rows = []
    for model, counts in _record(battles).items():
        _, low, high = spread.get(model, (None, None, None))
        rows.append({"model": model, "bt": bt[model], "bt_low": low, "bt_high": high, "elo": online[model],
                     **counts})
    return sorted(rows, key=lambda row: (-row["bt"], row["model"]))


def _nan_to_none(matrix: np.ndarray) -> list[list[float | None]]:
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in matrix.tolist()]


def _heatmap(labels: Sequence[str], z: list[list[float | None]], cells: list[list[str]], title: str,
             colorscale: str, lang: str | None, **ranges: float) -> go.Figure:
    fig = go.Figure()
    if not labels:
        return annotate_empty(_layout(fig, title, "", ""), text("charts.arena.empty", lang))
    fig.add_trace(go.Heatmap(z=z, x=list(labels), y=list(labels), text=cells, texttemplate="%{text}",
                             colorscale=colorscale, hoverongaps=False, **ranges))
    _layout(fig, title, text("charts.arena.column", lang), text("charts.arena.row", lang))
    fig.update_yaxes(autorange="reversed")
    return fig


def make_win_rate_heatmap(labels: Sequence[str], matrix: np.ndarray, lang: str | None = None) -> go.Figure:
    """Heatmap of win_rate_matrix(): how often the row model beat the column model (ties left out)."""
    z = _nan_to_none(np.asarray(matrix, dtype=float))
    cells = [["" if v is None else f"{v:.0%}" for v in row] for row in z]
    return _heatmap(labels, z, cells, text("charts.arena.win_rate", lang), "RdBu", lang, zmin=0.0, zmax=1.0)


def make_battle_count_heatmap(labels: Sequence[str], counts: np.ndarray, lang: str | None = None) -> go.Figure:
    """Heatmap of battle_counts(): how many votes each pair of models has had."""
    z = np.asarray(counts).tolist()
    cells = [[str(v) if v else "" for v in row] for row in z]
    return _heatmap(labels, z, cells, text("charts.arena.battles", lang), "Blues", lang, zmin=0)


def make_rating_figure(rows: Sequence[Mapping[str, Any]], lang: str | None = None) -> go.Figure:
    """Bradley-Terry rating per model (leaderboard order) with its 95 % bootstrap interval as error bars."""
    fig = go.Figure()
    title = text("charts.arena.rating", lang)
    if not rows:
        fig = _layout(fig, title, text("charts.arena.model", lang), text("charts.arena.rating_y", lang))
        return annotate_empty(fig, text("charts.arena.empty", lang))
    models, ratings = [r["model"] for r in rows], [r["bt"] for r in rows]
    high = [0.0 if r.get("bt_high") is None else r["bt_high"] - r["bt"] for r in rows]
    low = [0.0 if r.get("bt_low") is None else r["bt"] - r["bt_low"] for r in rows]
    fig.add_trace(go.Scatter(
        x=models, y=ratings, mode="markers", marker={"size": 10, "color": PALETTE[0]},
        name=text("charts.arena.bt", lang),
        error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
        customdata=[[r.get("battles", 0)] for r in rows],
        hovertemplate="%{x}: %{y:.0f}<br>" + text("charts.arena.battles_hover", lang) + "<extra></extra>",
    ))
    return _layout(fig, title, text("charts.arena.model", lang), text("charts.arena.rating_y", lang))
