"""EventBridge's rate expressions, as EventBridge takes and refuses them, and the template's
schedules (the checkpoint interval is a parameter) checked against them at every allowed value."""

from __future__ import annotations

import pytest

from localcloud.eventbridge import rate_seconds
from localcloud.intrinsics import Resolver
from localcloud.template import transform_template
from tests.support.cloud import ROOT

REAL_TEMPLATE = ROOT / "template.yaml"


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 days)", 172800)],
)
def test_rates_eventbridge_takes(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression",
    ["rate(1 minutes)", "rate(5 minute)", "rate(0 hours)", "rate(1 week)", "rate(-1 days)", "rate(5)"],
)
def test_rates_eventbridge_refuses(expression: str) -> None:
    with pytest.raises(ValueError, match="not a valid rate expression"):
        rate_seconds(expression)


def _schedules(parameters: dict[str, str]) -> dict[str, str]:
    """Each schedule rule's expression as CloudFormation resolves it with ``parameters``."""
    cfn = transform_template(REAL_TEMPLATE, parameters, "us-east-1")[0]
    defaults = {name: str(p.get("Default", "")) for name, p in cfn.get("Parameters", {}).items()}
    resolver = Resolver(cfn, defaults | parameters, {}, ref=lambda name: name, get_att=lambda *_: "")
    return {
        name: str(resolver.resolve(resource["Properties"]["ScheduleExpression"]))
        for name, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in resource["Properties"]
    }


@pytest.mark.parametrize("minutes", [None, 2, 1440])
def test_every_schedule_of_the_template_is_a_rate_eventbridge_takes(minutes: int | None) -> None:
    schedules = _schedules({} if minutes is None else {"AuditCheckpointMinutes": str(minutes)})
    assert schedules
    for expression in schedules.values():
        assert rate_seconds(expression) > 0
    checkpoints = [e for name, e in schedules.items() if "ScheduledCheckpoints" in name]
    assert checkpoints == [f"rate({minutes or 60} minutes)"]


def test_the_checkpoint_interval_cannot_be_one_minute() -> None:
    """rate(1 minutes) is refused by EventBridge: the parameter starts at 2."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load(REAL_TEMPLATE.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    assert template["Parameters"]["AuditCheckpointMinutes"]["MinValue"] == 2
