"""Detection and segmentation data: loaders for the COCO and VOC on-disk layouts
(:mod:`~nas.datasets.detection`, :mod:`~nas.datasets.segmentation`) and deterministic synthetic
sets written in those layouts (:mod:`~nas.datasets.synthetic`). Classification data stays in
:mod:`nas.data`, whose split helpers and :class:`~nas.data.DataSplit` these reuse.

:data:`TASK_DATASETS` names the loaders as a task config would (``task.dataset``); each takes
``resolution`` and the keyword arguments of :func:`nas.data.make_datasets` other than
``download`` (these formats are never downloaded)."""

from collections.abc import Callable

from nas.data import DataSplit
from nas.datasets.detection import detection_collate, make_detection_datasets
from nas.datasets.segmentation import make_segmentation_datasets

TASK_DATASETS: dict[str, Callable[..., DataSplit]] = {
    "coco-detection": make_detection_datasets,
    "voc-segmentation": make_segmentation_datasets,
}

__all__ = ["TASK_DATASETS", "detection_collate", "make_detection_datasets",
           "make_segmentation_datasets"]
