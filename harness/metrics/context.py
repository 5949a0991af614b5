"""What one scoring pass shares between metrics: the plan, the run folder, the reference set (loaded once
per context however many metrics use it) and the identifier words methods put into prompts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.data import ReferenceSet
    from harness.plan import RunPlan
    from harness.records import SampleRecord

DEFAULT_HEADLINE_RULE = {"rule": "final"}


def neutral_prompt(prompt: str, identifier: str) -> str:
    """The prompt without the identifier word / token: the text every method is scored against."""
    return " ".join(word for word in prompt.split() if word != identifier)


@dataclass
class ScoringContext:
    """Scoring inputs of one run.

    ``identifiers`` maps a sample's group (a subject) to the identifier word or token the method put
    into its prompts (``sks``, ``<rare>``); text-image metrics score against the prompt without it, so
    every method is scored against the same text.
    """

    plan: RunPlan
    run_dir: Path
    identifiers: dict[str, str] = field(default_factory=dict)
    _references: tuple[Any, str] | None = field(default=None, init=False, repr=False, compare=False)

    def references(self) -> tuple[ReferenceSet, str]:
        """The plan's ReferenceSet and its content digest, loaded on first use and kept by this context."""
        if self._references is None:
            from harness import data

            loaded = data.load_references(self.plan)
            self._references = (loaded, loaded.digest())
        return self._references

    def text_of(self, record: SampleRecord) -> str:
        """The text a text-image metric scores a sample against: its prompt without the group's identifier."""
        identifier = self.identifiers.get(record.group)
        return neutral_prompt(record.prompt, identifier) if identifier else record.prompt

    def headline_rule(self) -> dict[str, Any]:
        """The method's rule for which checkpoint becomes the headline (``params.headline``; default final)."""
        return dict(self.plan.method.params.get("headline", DEFAULT_HEADLINE_RULE))
