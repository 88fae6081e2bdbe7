"""README's table of the cost per million requests is the one the cost table gives."""

from __future__ import annotations

from tenant_security_tools.cost_table import BEGIN, END, markdown
from tests.support.cloud import ROOT


def test_readme_holds_the_current_cost_table() -> None:
    readme = (ROOT / "README.md").read_text()
    copy = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip()
    assert copy == markdown(), "README's route costs are stale: python -m tenant_security_tools.cost_table"


def test_every_row_adds_up_and_no_route_is_free() -> None:
    for line in markdown().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        total, *parts = (float(c.strip("$").replace(",", "")) for c in cells[1:])
        assert total > 0
        assert abs(total - sum(parts)) < 0.011 * len(parts), line
