from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from monitor.policy import FOLLOW_UP, Policy, WindowVerdict, confirmed_kinds, decide
from tagwatch.settings import Settings

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ALL = {"data": True, "concept": True, "feature": True}
# The policy of the default settings (2 confirmations, 3 windows of cool-down, 300 labelled questions, ...).
POLICY = Policy.from_settings(Settings())


def verdict(
    i: int,
    *,
    data: bool = False,
    concept: bool = False,
    feature: bool = False,
    version: str = "1",
    enough: dict[str, bool] | None = None,
    retrain: bool = False,
    result: str | None = None,
    trigger: str | None = None,
) -> WindowVerdict:
    return WindowVerdict(
        at=T0 + timedelta(minutes=i),
        model_version=version,
        detected={"data": data, "concept": concept, "feature": feature},
        enough_data=enough or ALL,
        retrain_started=retrain or result is not None,
        retrain_result=result,
        retrain_trigger=trigger,
    )


def run(history: list[WindowVerdict], policy: Policy | None = None, **kw: object) -> tuple[bool, list[str]]:
    kwargs: dict[str, object] = {"now": history[-1].at, "last_retrain_at": None, "labelled_available": 10_000}
    kwargs.update(kw)
    d = decide(history, policy=policy or POLICY, **kwargs)  # type: ignore[arg-type]
    return d.retrain, d.reasons


def test_single_detection_is_not_confirmed() -> None:
    retrain, reasons = run([verdict(0), verdict(1, data=True)])
    assert not retrain
    assert reasons == ["no drift confirmed"]


def test_two_consecutive_windows_confirm_and_retrain() -> None:
    retrain, reasons = run([verdict(0, data=True), verdict(1, data=True)])
    assert retrain
    assert "data drift confirmed (2 consecutive windows)" in reasons
    assert reasons[-1] == "retrain: data drift"


def test_interrupted_detections_do_not_confirm() -> None:
    history = [verdict(0, concept=True), verdict(1), verdict(2, concept=True)]
    assert confirmed_kinds(history, POLICY) == {"data": False, "concept": False, "feature": False}


def test_windows_without_enough_data_neither_confirm_nor_reset() -> None:
    thin = {"data": True, "concept": False, "feature": True}
    history = [verdict(0, concept=True), verdict(1, enough=thin), verdict(2, concept=True)]
    assert confirmed_kinds(history, POLICY)["concept"]
    # ... but the newest window itself must have had enough data.
    history = [verdict(0, concept=True), verdict(1, concept=True), verdict(2, concept=True, enough=thin)]
    assert not confirmed_kinds(history, POLICY)["concept"]


def test_detections_against_an_older_model_do_not_count() -> None:
    history = [verdict(0, data=True, version="1"), verdict(1, data=True, version="2")]
    assert not confirmed_kinds(history, POLICY)["data"]


def test_confirmations_configurable() -> None:
    history = [verdict(0, feature=True), verdict(1, feature=True)]
    assert not confirmed_kinds(history, replace(POLICY, confirmations=3))["feature"]
    assert confirmed_kinds([*history, verdict(2, feature=True)], replace(POLICY, confirmations=3))["feature"]
    assert confirmed_kinds(history[-1:], replace(POLICY, confirmations=1))["feature"]


def test_cooldown_in_windows() -> None:
    history = [verdict(0, data=True), verdict(1, data=True, retrain=True), verdict(2, data=True), verdict(3, data=True)]
    retrain, reasons = run(history)
    assert not retrain
    assert reasons[-1] == "cool-down: 2 of 3 windows since the last retrain"
    retrain, _ = run([*history, verdict(4, data=True)])
    assert retrain


def test_cooldown_in_time() -> None:
    history = [verdict(0, data=True), verdict(1, data=True)]
    policy = replace(POLICY, cooldown_seconds=3600)
    retrain, reasons = run(history, policy, last_retrain_at=history[-1].at - timedelta(minutes=10))
    assert not retrain
    assert reasons[-1].startswith("cool-down: last retrain at")
    retrain, _ = run(history, policy, last_retrain_at=history[-1].at - timedelta(hours=2))
    assert retrain


def test_minimum_labelled_data() -> None:
    history = [verdict(0, concept=True), verdict(1, concept=True)]
    retrain, reasons = run(history, labelled_available=299)
    assert not retrain
    assert reasons[-1] == "not enough labelled questions to retrain: 299 < 300"


def test_kinds_that_may_not_trigger() -> None:
    history = [verdict(0, data=True), verdict(1, data=True)]
    retrain, reasons = run(history, replace(POLICY, retrain_on=frozenset({"concept"})))
    assert not retrain
    assert "data drift confirmed (2 consecutive windows)" in reasons


def test_stable_stream_never_retrains() -> None:
    history = [verdict(i) for i in range(30)]
    for n in range(1, 31):
        assert not run(history[:n])[0]


def _after_promotion(windows: int, *, result: str = "promoted") -> list[WindowVerdict]:
    """A drift-triggered retrain in window 1 (with ``result``), then ``windows`` quiet windows of the new model."""
    version = "2" if result == "promoted" else "1"
    return [
        verdict(0, data=True),
        verdict(1, data=True, result=result, trigger="drift: data"),
        *[verdict(2 + i, version=version) for i in range(windows)],
    ]


def test_follow_up_retrain_after_a_promotion() -> None:
    policy = replace(POLICY, followup_windows=2)
    retrain, reasons = run(_after_promotion(1), policy)
    assert not retrain
    assert reasons[-1] == "follow-up retrain 1 of 3 in 1 window(s)"
    d = decide(_after_promotion(2), policy=policy, now=T0, last_retrain_at=None, labelled_available=10_000)
    assert d.retrain
    assert d.trigger == FOLLOW_UP
    assert d.reasons[-1] == "retrain: follow-up 1 of 3 after the drift-triggered promotion"


def test_no_follow_up_after_a_rejected_drift_retrain() -> None:
    retrain, reasons = run(_after_promotion(5, result="rejected"), replace(POLICY, followup_windows=2))
    assert not retrain
    assert reasons == ["no drift confirmed"]


def test_follow_ups_are_spaced_and_bounded_whatever_their_result() -> None:
    policy = replace(POLICY, followup_windows=2, max_followups=2)
    history = _after_promotion(2)[:-1]
    history.append(verdict(3, version="2", result="rejected", trigger=FOLLOW_UP))  # follow-up 1, lost
    assert not run([*history, verdict(4, version="2")], policy)[0]  # spaced: one window since
    history.append(verdict(4, version="2"))
    assert run([*history, verdict(5, version="2")], policy)[0]  # follow-up 2 is due
    history.append(verdict(5, version="2", result="promoted", trigger=FOLLOW_UP))
    history += [verdict(6, version="3"), verdict(7, version="3")]
    assert not run([*history, verdict(8, version="3")], policy)[0]  # both done


def test_a_new_drift_promotion_starts_new_follow_ups() -> None:
    policy = replace(POLICY, followup_windows=1, max_followups=1)
    history = [*_after_promotion(0), verdict(2, version="2", result="promoted", trigger=FOLLOW_UP)]
    assert not run([*history, verdict(3, version="3")], policy)[0]
    history += [verdict(3, version="3", result="promoted", trigger="drift: concept")]
    assert run([*history, verdict(4, version="4")], policy)[0]


def test_follow_up_needs_labelled_data_and_can_be_switched_off() -> None:
    retrain, reasons = run(_after_promotion(2), POLICY, labelled_available=10)
    assert not retrain
    assert reasons[-1].startswith("not enough labelled questions")
    assert not run(_after_promotion(2), replace(POLICY, max_followups=0))[0]


def test_a_due_follow_up_runs_during_a_drift_cool_down() -> None:
    # Drift stays confirmed against the new model, but its cool-down (3 windows) is not over; the follow-up
    # (every 2 windows) is due and runs.
    history = [*_after_promotion(1)[:-1], verdict(2, version="2", data=True)]
    d = decide(
        [*history, verdict(3, version="2", data=True)],
        policy=replace(POLICY, followup_windows=2, cooldown_windows=3),
        now=T0,
        last_retrain_at=None,
        labelled_available=10_000,
    )
    assert d.retrain
    assert d.trigger == FOLLOW_UP
    assert d.reasons == [
        "data drift confirmed (2 consecutive windows)",
        "retrain: follow-up 1 of 3 after the drift-triggered promotion",
    ]


def test_an_interrupted_retrain_counts_for_the_cool_down_and_starts_no_follow_up() -> None:
    # The monitor's process died during the retrain of window 1 (the next run marked it "interrupted"): drift is still
    # confirmed, but it is not started again at once, so a retrain that kills its process cannot loop.
    history = [verdict(0, data=True), verdict(1, data=True, result="interrupted", trigger="drift: data")]
    retrain, reasons = run([*history, verdict(2, data=True)])
    assert not retrain
    assert reasons[-1] == "cool-down: 1 of 3 windows since the last retrain"
    later = [*history, verdict(2, data=True), verdict(3, data=True)]
    assert not run([*later, verdict(4)], replace(POLICY, followup_windows=1))[0]  # no follow-up: nothing was promoted
    assert run([*later, verdict(4, data=True)])[0]  # the cool-down is over: drift may retrain again


def test_an_interrupted_follow_up_counts_as_one() -> None:
    policy = replace(POLICY, followup_windows=1, max_followups=1)
    history = [*_after_promotion(1), verdict(3, version="2", result="interrupted", trigger=FOLLOW_UP)]
    retrain, _ = run([*history, verdict(4, version="2")], policy)
    assert not retrain


def test_the_policy_has_its_defaults_in_the_settings_alone() -> None:
    fields = Settings.model_fields
    defaults = Policy.from_settings(Settings.model_construct())
    assert defaults.confirmations == fields["drift_confirmations"].default
    assert defaults.cooldown_windows == fields["retrain_cooldown_windows"].default
    assert defaults.cooldown_seconds == fields["retrain_cooldown_seconds"].default
    assert defaults.min_labelled == fields["retrain_min_labelled"].default
    assert defaults.followup_windows == fields["retrain_followup_windows"].default
    assert defaults.max_followups == fields["retrain_max_followups"].default
    assert defaults.retrain_on == {"data", "concept", "feature"}
    chosen = Policy.from_settings(Settings(drift_confirmations=4, retrain_max_followups=0))
    assert (chosen.confirmations, chosen.max_followups) == (4, 0)
