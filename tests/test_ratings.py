"""Ratings from battles, checked against cases worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from workbench.arena.ratings import (
    battle_counts,
    bootstrap,
    bradley_terry,
    elo,
    leaderboard,
    make_battle_count_heatmap,
    make_rating_figure,
    make_win_rate_heatmap,
    win_rate_matrix,
)


def test_elo_one_win_moves_both_sides_by_half_k():
    # Equal ratings: expected score 1 / (1 + 10^0) = 0.5, so A gains 4 * (1 - 0.5) = 2 and B loses 2.
    assert elo([("A", "B", "left")], k=4, scale=400, base=1000) == {"A": 1002.0, "B": 998.0}
    assert elo([("A", "B", "right")]) == {"A": 998.0, "B": 1002.0}


def test_elo_tie_between_equals_changes_nothing():
    # Score 0.5 minus expected 0.5 is 0, for a tie and for a both-bad vote (scored as a tie).
    assert elo([("A", "B", "tie"), ("B", "A", "both_bad")]) == {"A": 1000.0, "B": 1000.0}


def test_elo_depends_on_the_order_of_battles():
    # Win then loss: A 1002 -> expected 1/(1+10^(-4/400)) = 0.50576, so A loses 4 * 0.50576 = 2.02303 -> 999.977.
    # Loss then win: the mirror image, so A ends at 1000.023. Same battles, different ratings.
    battles = [("A", "B", "left"), ("A", "B", "right")]
    first = elo(battles)
    second = elo(battles, order=[1, 0])
    expected = 1 / (1 + 10 ** (-4 / 400))
    assert first["A"] == pytest.approx(1002 - 4 * expected)
    assert second["A"] == pytest.approx(998 + 4 * expected)
    assert first["A"] != second["A"]
    with pytest.raises(ValueError, match="each battle index"):
        elo(battles, order=[0, 0])


def test_bradley_terry_three_wins_in_four_is_a_strength_ratio_of_three():
    # MLE: s_A / (s_A + s_B) = 3/4, so s_A / s_B = 3 and the gap is 400 * log10(3) = 190.85; mean stays 1000.
    battles = [("A", "B", "left")] * 2 + [("B", "A", "right"), ("B", "A", "left")]
    ratings = bradley_terry(battles)
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=0.5)
    assert (ratings["A"] + ratings["B"]) / 2 == pytest.approx(1000.0)


def test_bradley_terry_ranks_a_transitive_record_in_order():
    # A beats B 3-1, B beats C 3-1, A beats C 4-0 (plus a tie): A > B > C.
    battles = ([("A", "B", "left")] * 3 + [("A", "B", "right")] + [("B", "C", "left")] * 3 + [("C", "B", "left")]
               + [("C", "A", "right")] * 4 + [("A", "C", "tie")])
    ratings = bradley_terry(battles)
    assert ratings["A"] > ratings["B"] > ratings["C"]
    assert np.mean(list(ratings.values())) == pytest.approx(1000.0)


def test_bradley_terry_symmetric_record_gives_equal_ratings():
    # Each pair splits its games (and ties count half each): every model is equally strong.
    battles = [("A", "B", "left"), ("A", "B", "right"), ("B", "C", "tie"), ("C", "A", "left"), ("A", "C", "left"),
               ("B", "C", "both_bad")]
    ratings = bradley_terry(battles)
    for value in ratings.values():
        assert value == pytest.approx(1000.0, abs=1e-6)


def test_bradley_terry_undefeated_model_stays_finite():
    # Without the prior the likelihood grows for ever as A's rating rises; with it A ends far ahead but finite.
    # B and C split their games, so they end level (up to the prior's tiny pull: B played more games).
    ratings = bradley_terry([("A", "B", "left")] * 3 + [("B", "C", "left"), ("C", "B", "left")])
    assert all(math.isfinite(v) for v in ratings.values())
    assert ratings["A"] > ratings["B"] + 500
    assert ratings["B"] == pytest.approx(ratings["C"], abs=1.0)


def test_unknown_choice_and_empty_battles():
    with pytest.raises(ValueError, match="'draw'.*left, right, tie, both_bad"):
        bradley_terry([("A", "B", "draw")])
    with pytest.raises(ValueError, match="against itself"):
        elo([("A", "A", "left")])
    assert elo([]) == {} and bradley_terry([]) == {} and bootstrap([]) == {} and leaderboard([]) == []
    labels, rates = win_rate_matrix([])
    assert labels == [] and rates.shape == (0, 0)


def _record(a_wins: int, b_wins: int) -> list[tuple[str, str, str]]:
    return [("A", "B", "left")] * a_wins + [("A", "B", "right")] * b_wins


def test_bootstrap_is_seeded_contains_the_estimate_and_narrows_with_more_battles():
    many = _record(60, 40) + [("B", "C", "left")] * 30 + [("B", "C", "right")] * 20
    few = _record(6, 4) + [("B", "C", "left")] * 3 + [("B", "C", "right")] * 2
    assert bootstrap(many, rounds=50, seed=3) == bootstrap(many, rounds=50, seed=3)
    assert bootstrap(many, rounds=50, seed=3) != bootstrap(many, rounds=50, seed=4)
    point = bradley_terry(many)
    wide, narrow = bootstrap(few, rounds=100), bootstrap(many, rounds=100)
    for model, (median, low, high) in narrow.items():
        assert low <= point[model] <= high and low <= median <= high
        assert high - low < wide[model][2] - wide[model][1]


def test_bootstrap_elo_method():
    spread = bootstrap(_record(8, 2), method="elo", rounds=30)
    assert spread["A"][0] > 1000 > spread["B"][0]
    with pytest.raises(ValueError, match="'glicko'"):
        bootstrap(_record(1, 1), method="glicko")


SMALL = [("A", "B", "left"), ("A", "B", "left"), ("B", "A", "left"), ("A", "B", "tie"),  # A 2-1 B, one tie
         ("B", "C", "right"), ("C", "B", "both_bad"),  # C 1-0 B, one both-bad
         ("A", "D", "tie")]  # A and D only tied: no decisive battle


def test_win_rate_matrix_on_a_hand_made_set():
    labels, rates = win_rate_matrix(SMALL)
    assert labels == ["A", "B", "C", "D"]
    a, b, c, d = range(4)
    assert rates[a, b] == pytest.approx(2 / 3) and rates[b, a] == pytest.approx(1 / 3)  # the tie is left out
    assert rates[c, b] == 1.0 and rates[b, c] == 0.0
    assert math.isnan(rates[a, d]) and math.isnan(rates[a, c]) and math.isnan(rates[a, a])


def test_battle_counts_on_a_hand_made_set():
    labels, counts = battle_counts(SMALL)
    assert labels == ["A", "B", "C", "D"]
    assert counts.tolist() == [[0, 4, 0, 1], [4, 0, 2, 0], [0, 2, 0, 0], [1, 0, 0, 0]]


def test_leaderboard_rows():
    rows = leaderboard(SMALL, rounds=20)
    assert [row["model"] for row in rows][0] in ("A", "C")
    by_model = {row["model"]: row for row in rows}
    assert {k: by_model["A"][k] for k in ("battles", "wins", "losses", "ties", "both_bad")} == \
        {"battles": 5, "wins": 2, "losses": 1, "ties": 2, "both_bad": 0}
    assert by_model["B"]["both_bad"] == 1 and by_model["B"]["losses"] == 3
    for row in rows:
        assert row["wins"] + row["losses"] + row["ties"] + row["both_bad"] == row["battles"]
        assert row["bt_low"] <= row["bt_high"]
    ratings = [row["bt"] for row in rows]
    assert ratings == sorted(ratings, reverse=True)
    assert leaderboard(SMALL, rounds=0)[0]["bt_low"] is None


def test_figures_draw_and_handle_no_votes():
    labels, rates = win_rate_matrix(SMALL)
    heat = make_win_rate_heatmap(labels, rates)
    assert isinstance(heat, go.Figure) and heat.data[0].z[0][3] is None and heat.data[0].text[0][1] == "67%"
    assert make_battle_count_heatmap(*battle_counts(SMALL)).data[0].z[0][1] == 4
    rating = make_rating_figure(leaderboard(SMALL, rounds=10))
    assert list(rating.data[0].x)[0] in ("A", "C") and rating.data[0].error_y.array is not None
    for empty in (make_rating_figure([]), make_win_rate_heatmap([], np.zeros((0, 0))),
                  make_battle_count_heatmap([], np.zeros((0, 0), dtype=int))):
        assert not empty.data and "No votes yet" in empty.layout.annotations[0].text
        # The empty state alone: no bare axes with plotly's default range beside it.
        assert empty.layout.xaxis.visible is False and empty.layout.yaxis.visible is False


def test_the_arena_charts_speak_korean_when_asked():
    labels, rates = win_rate_matrix(SMALL)
    title = make_win_rate_heatmap(labels, rates, "ko").layout.title.text
    assert title == "행 모델이 열 모델을 이긴 비율 (무승부 제외)"
    assert "대결" in make_rating_figure(leaderboard(SMALL, rounds=10), "ko").data[0].hovertemplate
    empty = make_battle_count_heatmap([], np.zeros((0, 0), dtype=int), "ko")
    assert "아직 투표가 없습니다" in empty.layout.annotations[0].text
