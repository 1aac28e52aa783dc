"""The "changed because" explanation on hand-made contributions."""

from __future__ import annotations

from scoring.changes import change_sentence, changed_because


def test_a_fall_is_explained_by_the_features_that_pushed_it_down_most() -> None:
    before = {
        "days_since_last_web": ["2", 0.40],
        "unsubscribed": ["0", 0.05],
        "n_pricing_view_30d": ["1", 0.30],
        "industry": ["software", 0.10],
    }
    after = {
        "days_since_last_web": ["45", -0.50],  # moved down 0.9: first
        "unsubscribed": ["1", -0.35],  # down 0.4: second
        "n_pricing_view_30d": ["1", 0.30],  # unchanged: not a reason
        "industry": ["software", 0.30],  # moved up: against the change, never named
    }
    phrases = changed_because(before, after, 0.31, 0.12)
    assert phrases == ["visited the website 45 days ago", "unsubscribed from e-mails"]
    assert change_sentence(0.31, 0.12, phrases) == (
        "p_convert 0.31 -> 0.12: visited the website 45 days ago, unsubscribed from e-mails"
    )


def test_a_rise_names_the_features_that_pushed_it_up_at_most_n() -> None:
    before = {f"n_pricing_view_{d}d": ["0", 0.0] for d in (7, 30, 90)}
    before["days_since_last_event"] = [None, -0.2]
    after = {
        "n_pricing_view_7d": ["2", 0.5],
        "n_pricing_view_30d": ["2", 0.3],
        "n_pricing_view_90d": ["2", 0.2],
        "days_since_last_event": ["1", 0.4],
    }
    phrases = changed_because(before, after, 0.1, 0.4, n=2)
    assert phrases == ["last activity 1 day ago", "2 visits to the pricing page in the last 7 days"]


def test_nothing_to_say_without_contributions_or_without_a_change() -> None:
    c = {"unsubscribed": ["1", -0.3]}
    assert changed_because(None, c, 0.2, 0.1) == []  # a row logged before they were kept
    assert changed_because(c, c, 0.2, 0.2) == []
    assert changed_because({"unsubscribed": ["1", -0.3]}, {"unsubscribed": ["1", -0.305]},
                           0.2, 0.19) == []  # fmt: skip
    assert change_sentence(0.2, 0.2, []) == "p_convert 0.20 -> 0.20: no change"
    assert change_sentence(0.2, 0.1, []).endswith("no single feature explains it")


def test_a_feature_only_one_model_knows_counts_as_zero_in_the_other() -> None:
    phrases = changed_because({"old_only": ["3", 0.5]}, {"bounced": ["1", -0.4]}, 0.5, 0.2)
    # old_only lost all of its 0.5 (said with its last known value), bounced pushed 0.4 down
    assert phrases == ["old only: 3", "e-mail address bounced"]


def test_a_feature_whose_value_did_not_change_is_named_only_when_nothing_else_moved() -> None:
    before = {"industry": ["software", 0.40], "unsubscribed": ["0", 0.05]}
    after = {"industry": ["software", -0.20], "unsubscribed": ["1", -0.05]}
    # industry moved more (0.6, shared credit in the trees) but its value is the same
    assert changed_because(before, after, 0.3, 0.1) == ["unsubscribed from e-mails"]
    same = {"industry": ["software", -0.20], "unsubscribed": ["0", 0.05]}
    assert changed_because(before, same, 0.3, 0.2) == ["industry: software"]
