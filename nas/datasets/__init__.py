"""Detection and segmentation data: loaders for the COCO and VOC on-disk layouts
(:mod:`~nas.datasets.detection`, :mod:`~nas.datasets.segmentation`) and deterministic synthetic
sets written in those layouts (:mod:`~nas.datasets.synthetic`). Classification data stays in
:mod:`nas.data`, whose split helpers and :class:`~nas.data.DataSplit` these reuse."""

from nas.datasets.detection import detection_collate, make_detection_datasets
from nas.datasets.segmentation import make_segmentation_datasets

__all__ = ["detection_collate", "make_detection_datasets", "make_segmentation_datasets"]
