"""The task section of a config: kinds, their datasets, and synthetic scenes written on first
use (``nas.task_base.task_data``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.config import TASK_METRICS, TaskConfig, validate_config
from nas.datasets.synthetic import MANIFEST
from nas.task_base import task_data


@pytest.mark.parametrize("task, fragment", [
    ({"kind": "detection"}, "a detection task learns from coco-detection, not 'digits'"),
    ({"kind": "segmentation", "dataset": "coco-detection"},
     "a segmentation task learns from voc-segmentation"),
    ({"dataset": "voc-segmentation"}, "a classification task learns from digits or cifar10"),
    ({"kind": "detection", "dataset": "coco-detection", "synthetic": "presence"},
     "synthetic needs data_dir"),
    ({"synthetic": "shapes"}, "synthetic scenes are for detection and segmentation"),
    ({"kind": "pose"}, "task.kind"),
])
def test_task_kind_and_dataset_must_agree(task: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_config({"task": task}, "x.yaml")
    message = str(info.value)
    assert fragment in message and "\n" not in message


@pytest.mark.parametrize("extra, fragment", [
    ({"training": {"surrogate": True}}, "training.surrogate scores classifiers only"),
    ({"strategy": {"name": "zeroshot"}}, "strategy 'zeroshot' ranks candidates by classifier"),
])
def test_proxies_are_refused_for_dense_tasks(extra: dict, fragment: str) -> None:
    task = {"kind": "segmentation", "dataset": "voc-segmentation", "data_dir": "x"}
    with pytest.raises(ValueError, match=fragment):
        validate_config({"task": task, **extra}, "x.yaml")


def test_every_kind_has_a_metric() -> None:
    assert set(TASK_METRICS) == {"classification", "detection", "segmentation"}


@pytest.mark.parametrize("kind, dataset, synthetic, classes", [
    ("detection", "coco-detection", "presence", ("person",)),
    ("segmentation", "voc-segmentation", "shapes", None)])
def test_synthetic_scenes_are_written_once_then_read(tmp_path: Path, kind: str, dataset: str,
                                                     synthetic: str, classes: tuple | None
                                                     ) -> None:
    root = tmp_path / "scenes"
    config = TaskConfig(kind=kind, dataset=dataset, synthetic=synthetic, data_dir=str(root),
                        synthetic_images=12)
    first = task_data(config, 32, seed=0)
    stamp = (root / MANIFEST).stat().st_mtime_ns
    again = task_data(config, 24, seed=1)  # another seed draws another split of the same set
    assert (root / MANIFEST).stat().st_mtime_ns == stamp
    assert len(first.train) + len(first.val) == len(again.train) + len(again.val) == 12
    if classes is not None:
        assert first.classes == classes
    other = TaskConfig(kind=kind, dataset=dataset, synthetic=synthetic, data_dir=str(root),
                       synthetic_images=20)
    with pytest.raises(ValueError, match="is not the synthetic"):
        task_data(other, 32)
