"""Evaluation prompts of a task, expanded from its prompt sets."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from harness.specs import PromptSetSpec, TaskSpec

if TYPE_CHECKING:
    from harness.plan import RunPlan


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt of one prompt set; ``group`` is the class (or topic) it is aggregated under."""

    prompt_set: str
    prompt_id: str
    text: str
    group: str
    samples: int


def expand_prompts(task: TaskSpec, identifiers: dict[str, str] | None = None) -> list[EvalPrompt]:
    """All evaluation prompts in a fixed order; ids are stable across methods and runs.

    ``identifiers`` maps a subject to the word or token a method uses for it (``subject_templates``
    sets); subjects not in it get the task's identifier (``data.identifier``).
    """
    prompts: list[EvalPrompt] = []
    for prompt_set in task.evaluation.prompt_sets:
        if prompt_set.source == "subject_templates":
            prompts.extend(_subject_prompts(task, prompt_set, identifiers or {}))
        elif prompt_set.source == "class_templates":
            for class_name in task.data.classes:
                for t, template in enumerate(task.data.templates):
                    prompts.append(EvalPrompt(prompt_set.name, f"{prompt_set.name}.{class_name}.t{t}",
                                              fill_class(template, class_name), class_name,
                                              prompt_set.samples_per_prompt))
        else:
            for prompt in prompt_set.prompts:
                prompts.append(EvalPrompt(prompt_set.name, f"{prompt_set.name}.{prompt.id}", prompt.text,
                                          prompt.group or prompt.id, prompt_set.samples_per_prompt))
    return prompts


VOWEL_SOUND = re.compile(r"^(?:[aeiou]|hour|honest|honou?r)", re.IGNORECASE)
EXCEPTIONS = re.compile(r"^(?:uni|use|usu|one|eu)", re.IGNORECASE)  # "a unicorn", "a one-eyed", "a euro"


def article(word: str) -> str:
    """``an`` before a vowel sound (``an airplane``, ``an automobile``), else ``a`` (``a unicorn``)."""
    return "an" if VOWEL_SOUND.match(word) and not EXCEPTIONS.match(word) else "a"


def fill_class(template: str, class_name: str) -> str:
    """A class template with its class filled in, the indefinite article before it made grammatical:
    ``"a photo of a {c}"`` with ``airplane`` -> ``"a photo of an airplane"``."""
    text = template.format(c=class_name)
    fixed = article(class_name)
    pattern = re.compile(rf"\b([Aa]n?) (?={re.escape(class_name)}\b)")
    return pattern.sub(lambda m: (fixed.capitalize() if m.group(1)[0] == "A" else fixed) + " ", text)


def _subject_prompts(task: TaskSpec, prompt_set: PromptSetSpec, identifiers: dict[str, str]) -> list[EvalPrompt]:
    """One prompt per (subject, template); ``group`` is the subject, ids do not depend on the identifier."""
    if not getattr(task.data, "subjects", None):
        raise ValueError(f"prompt set '{prompt_set.name}': 'subject_templates' needs a data adapter with subjects")
    prompts = []
    for subject in task.data.subjects:
        templates = prompt_set.live_templates if subject.live and prompt_set.live_templates else prompt_set.templates
        identifier = identifiers.get(subject.name, task.data.identifier)
        for t, template in enumerate(templates):
            prompts.append(EvalPrompt(prompt_set.name, f"{prompt_set.name}.{subject.name}.p{t:02d}",
                                      template.format(identifier, subject.class_noun), subject.name,
                                      prompt_set.samples_per_prompt))
    return prompts


def plan_prompts(plan: RunPlan, identifiers: dict[str, str] | None = None) -> list[EvalPrompt]:
    """The run's evaluation prompts: the task's sets, with dataset captions filled in and the prefix applied.

    ``identifiers`` goes to ``expand_prompts`` (the word or token each subject's method uses)."""
    prompts: list[EvalPrompt] = []
    for prompt_set in plan.task.evaluation.prompt_sets:
        if prompt_set.source == "dataset_captions":
            from harness.data.images import eval_items

            for item in eval_items(plan, prompt_set.max_prompts or 0):
                prompts.append(EvalPrompt(prompt_set.name, f"{prompt_set.name}.{item.item_id}", item.caption,
                                          item.group, prompt_set.samples_per_prompt))
        else:
            one_set = plan.task.model_copy(update={"evaluation": plan.task.evaluation.model_copy(
                update={"prompt_sets": [prompt_set]})})
            prompts.extend(expand_prompts(one_set, identifiers))
    trigger = getattr(plan.task.data, "trigger", None)
    if trigger:  # person tasks: "{t}" in a prompt is the trigger word
        prompts = [replace(p, text=p.text.replace("{t}", trigger)) for p in prompts]
    prefix = plan.task.sampling.prompt_prefix
    if prefix:
        prompts = [replace(p, text=f"{prefix} {p.text}") for p in prompts]
    return prompts
