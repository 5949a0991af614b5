"""Near-black samples: degenerate outputs are counted per prompt set, not averaged away.

Every scoring pass adds this count (a task does not name it); ``SampleRecord.near_black`` is set at
generation (mean uint8 intensity below the task's ``sampling.near_black_threshold``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from harness.metric_registry import card, register_metric
from harness.records import ALL, Aggregate, SampleRecord

if TYPE_CHECKING:
    from harness.metrics.context import ScoringContext


@register_metric(metric="near_black_count", higher_is_better=False, display=("count",), per_sample=False,
                 count=True, description="samples whose mean uint8 intensity is below the task's threshold")
def counts(ctx: ScoringContext, records: list[SampleRecord]) -> list[Aggregate]:
    """Near-black samples per prompt set, with N."""
    metric_card = card("near_black_count", "none", "none",
                       f"mean uint8 intensity < {ctx.plan.task.sampling.near_black_threshold}",
                       "count of samples", "harness")
    found: dict[str, list[int]] = defaultdict(list)
    for record in records:
        found[record.prompt_set].append(int(record.near_black))
    return [Aggregate("near_black_count", s, ALL, float(sum(v)), len(v), {**metric_card.as_dict(), "n": len(v)})
            for s, v in sorted(found.items())]
