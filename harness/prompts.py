"""Evaluation prompts of a task, expanded from its prompt sets."""

from __future__ import annotations

from dataclasses import dataclass

from harness.specs import TaskSpec


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt of one prompt set; ``group`` is the class (or topic) it is aggregated under."""

    prompt_set: str
    prompt_id: str
    text: str
    group: str
    samples: int


def expand_prompts(task: TaskSpec) -> list[EvalPrompt]:
    """All evaluation prompts in a fixed order; ids are stable across methods and runs."""
    prompts: list[EvalPrompt] = []
    for prompt_set in task.evaluation.prompt_sets:
        if prompt_set.source == "class_templates":
            for class_name in task.data.classes:
                for t, template in enumerate(task.data.templates):
                    prompts.append(EvalPrompt(prompt_set.name, f"{prompt_set.name}.{class_name}.t{t}",
                                              template.format(c=class_name), class_name,
                                              prompt_set.samples_per_prompt))
        else:
            for prompt in prompt_set.prompts:
                prompts.append(EvalPrompt(prompt_set.name, f"{prompt_set.name}.{prompt.id}", prompt.text,
                                          prompt.group or prompt.id, prompt_set.samples_per_prompt))
    return prompts
