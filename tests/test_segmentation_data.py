from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from conftest import file_tree
from nas.datasets import (
    TASK_DATASETS,
    _common,
    make_detection_datasets,
    make_segmentation_datasets,
    synthetic,
)
from nas.datasets.synthetic import (
    PRESENCE,
    SceneSpec,
    scenes,
    voc_palette,
    write_detection_dataset,
    write_segmentation_dataset,
)

SPEC = SceneSpec(image_size=48, num_images=24, ignore_border=1)



def _by_name(dataset: torch.utils.data.Dataset, attr: str) -> dict[str, tuple]:
    return {getattr(s, attr).stem: dataset[i] for i, s in enumerate(dataset.samples)}


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_segmentation_dataset(tmp_path_factory.mktemp("seg") / "voc", SPEC, seed=3)


@pytest.fixture
def broken(voc: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(voc, tmp_path / "voc"))


def test_masks_are_paletted_pngs_and_deterministic(voc: Path, tmp_path: Path) -> None:
    mask = Image.open(voc / "SegmentationClass" / "000000.png")
    assert mask.mode == "P" and mask.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    assert voc_palette()[3 * 255:] == [224, 224, 192]  # VOC's "ignore" colour
    assert (voc / "classes.txt").read_text().split() == ["background", "circle", "square",
                                                         "triangle"]
    again = write_segmentation_dataset(tmp_path / "again", SPEC, seed=3)
    files = sorted(p.relative_to(voc) for p in voc.rglob("*") if p.is_file())
    assert len(files) == 2 * 24 + 2  # images, masks, classes.txt, synthetic.json
    assert all((voc / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_same_resolution_gives_the_written_mask(voc: Path) -> None:
    split = make_segmentation_datasets(48, data_dir=voc, seed=0)
    assert split.num_classes == 4 and split.classes[0] == "background"
    items = _by_name(split.train, "mask") | _by_name(split.val, "mask")
    assert len(items) == 24
    for i, scene in enumerate(scenes(SPEC, seed=3)):
        image, mask = items[f"{i:06d}"]
        assert image.shape == (3, 48, 48) and mask.dtype == torch.int64
        assert np.array_equal(mask.numpy(), scene.mask)
    assert any((m == 255).any() for _, m in items.values())  # the ignore ring survives


@pytest.mark.parametrize("resolution", [30, 48, 80])
def test_nearest_resize_keeps_class_ids(voc: Path, resolution: int) -> None:
    split = make_segmentation_datasets(resolution, data_dir=voc, seed=0)
    for _, mask in (split.train[i] for i in range(6)):
        assert mask.shape == (resolution, resolution)
        assert set(mask.unique().tolist()) <= {0, 1, 2, 3, 255}


def test_preloaded_and_per_item_decoding_give_the_same_items(
        voc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preloaded = make_segmentation_datasets(30, data_dir=voc, seed=0)
    assert preloaded.val.masks.stacked is not None
    monkeypatch.setattr(_common, "PRELOAD_BYTES", 0)
    per_item = make_segmentation_datasets(30, data_dir=voc, seed=0)
    assert per_item.val.masks.stacked is None and per_item.val.images.stacked is None
    for i in range(len(per_item.val)):
        assert all(torch.equal(a, b) for a, b in zip(preloaded.val[i], per_item.val[i]))


@pytest.mark.parametrize("resolution", [48, 80])
def test_box_centres_fall_on_their_class_in_the_paired_scene(tmp_path: Path,
                                                             resolution: int) -> None:
    spec = dataclasses.replace(SPEC, ignore_border=0)
    det = make_detection_datasets(resolution, data_dir=write_detection_dataset(
        tmp_path / "det", spec, seed=7), seed=0)
    seg = make_segmentation_datasets(resolution, data_dir=write_segmentation_dataset(
        tmp_path / "seg", spec, seed=7), seed=0)
    masks = _by_name(seg.train, "mask") | _by_name(seg.val, "mask")
    targets = _by_name(det.train, "path") | _by_name(det.val, "path")
    assert sorted(masks) == sorted(targets)
    checked = 0
    for name, (_, target) in targets.items():
        mask = masks[name][1]
        for box, label in zip(target["boxes"], target["labels"]):
            cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
            assert int(mask[cy, cx]) == int(label) + 1
            checked += 1
        labelled = set(mask.unique().tolist()) - {0}
        assert labelled == {int(label) + 1 for label in target["labels"]}
    assert checked > 20


def test_presence_masks_leave_distractors_as_background(tmp_path: Path) -> None:
    spec = dataclasses.replace(PRESENCE, image_size=32, num_images=20)
    split = make_segmentation_datasets(32, data_dir=write_segmentation_dataset(
        tmp_path / "p", spec, seed=1), seed=0)
    assert split.classes == ("background", "person")
    # Annotating the distractors too draws the same scenes (same shape list, same draws): the
    # person pixels and boxes are the triangles', and some scenes without a person hold shapes.
    everything = dataclasses.replace(spec, shapes=("triangle", "circle", "square"),
                                     class_names=None, distractors=())
    pairs = list(zip(scenes(spec, seed=1), scenes(everything, seed=1)))
    for person, full in pairs:
        assert np.array_equal(person.image, full.image)
        assert np.array_equal(person.mask, np.where(full.mask == 1, 1, 0))
        assert np.array_equal(person.boxes, full.boxes[full.labels == 0])
    assert any(len(p.labels) == 0 and len(f.labels) > 0 for p, f in pairs)
    loader = DataLoader(split.train, batch_size=4)
    images, masks = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32)
    assert set(masks.unique().tolist()) <= {0, 1}


def test_image_sets_lists_are_the_split(broken: Path) -> None:
    lists = broken / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("000001\n000002\n000003\n")
    (lists / "val.txt").write_text("000000\n")
    split = make_segmentation_datasets(32, data_dir=broken)
    assert [s.mask.stem for s in split.train.samples] == ["000001", "000002", "000003"]
    assert [s.mask.stem for s in split.val.samples] == ["000000"]


def _damage(root: Path, case: str) -> None:
    masks, images = root / "SegmentationClass", root / "JPEGImages"
    mask = Image.open(masks / "000002.png")
    if case == "size":
        mask.resize((40, 48), Image.NEAREST).save(masks / "000002.png")
    elif case == "value":
        values = np.array(mask)
        values[5, 7] = 9
        bad = Image.fromarray(values, mode="L").convert("P")
        bad.putpalette(voc_palette())
        bad.save(masks / "000002.png")
    elif case == "rgb":
        mask.convert("RGB").save(masks / "000002.png")
    elif case == "missing_image":
        (images / "000002.png").unlink()
    elif case == "classes":
        (root / "classes.txt").unlink()
    elif case == "list":
        lists = root / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True)
        (lists / "train.txt").write_text("000001\n000077\n")
        (lists / "val.txt").write_text("000000\n")


@pytest.mark.parametrize("case, message", [
    ("size", r"mask .*000002\.png is 40x48, its image .*000002\.png is 48x48"),
    ("value", r"mask .*000002\.png: value 9 at \(x=7, y=5\) is neither a class id \(0\.\.3\)"),
    ("rgb", r"mask .*000002\.png is mode RGB"),
    ("missing_image", r"000002\.png: no image .*JPEGImages/000002\.\* for mask"),
    ("classes", r"no classes\.txt in .*voc; write one .* or pass num_classes"),
    ("list", r"train\.txt: line 2: mask .*000077\.png does not exist"),
])
def test_bad_masks_are_one_line_naming_file_and_entry(broken: Path, case: str,
                                                      message: str) -> None:
    _damage(broken, case)
    before = file_tree(broken.parent)
    with pytest.raises(ValueError, match=message) as info:
        make_segmentation_datasets(32, data_dir=broken)
    assert "\n" not in str(info.value)
    assert file_tree(broken.parent) == before


def test_task_datasets_name_both_loaders(voc: Path) -> None:
    split = TASK_DATASETS["voc-segmentation"](32, data_dir=voc, val_fraction=0.25, seed=1,
                                              max_train=10)
    direct = make_segmentation_datasets(32, data_dir=voc, val_fraction=0.25, seed=1)
    assert len(split.train) == 10 and len(direct.train) == 24 - len(direct.val)
    assert split.val.samples == direct.val.samples
    assert TASK_DATASETS["coco-detection"] is make_detection_datasets


def test_num_classes_stands_in_for_classes_txt(broken: Path) -> None:
    (broken / "classes.txt").unlink()
    split = make_segmentation_datasets(32, data_dir=broken, num_classes=4)
    assert split.classes == ("0", "1", "2", "3")
    with pytest.raises(ValueError, match="value 3 at .* neither a class id \\(0\\.\\.2\\)"):
        make_segmentation_datasets(32, data_dir=broken, num_classes=3)


def test_module_entry_point_writes_both_sets(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert synthetic.main([str(tmp_path / "out"), "--presence", "--images", "5", "--size",
                           "32", "--seed", "4"]) == 0
    assert "wrote 5 scenes of 32x32" in capsys.readouterr().out
    seg = make_segmentation_datasets(32, data_dir=tmp_path / "out" / "segmentation")
    det = make_detection_datasets(32, data_dir=tmp_path / "out" / "detection")
    assert seg.classes == ("background", "person") and det.classes == ("person",)
    with pytest.raises(SystemExit) as info:
        synthetic.main([str(tmp_path / "out")])
    assert info.value.code == 2
    assert "detection exists" in capsys.readouterr().err
