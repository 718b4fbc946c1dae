from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import file_tree
from nas.data import IMAGENET_MEAN, IMAGENET_STD
from nas.datasets import _common, detection_collate, make_detection_datasets, synthetic
from nas.datasets.detection import _stratum, read_coco
from nas.datasets.synthetic import (
    PRESENCE,
    SceneSpec,
    ensure_synthetic_dataset,
    scenes,
    write_detection_dataset,
)

SPEC = SceneSpec(image_size=48, num_images=24)



def _items(dataset: torch.utils.data.Dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_detection_dataset(tmp_path_factory.mktemp("det") / "coco", SPEC, seed=3)


@pytest.fixture
def broken(coco: Path, tmp_path: Path) -> Path:
    """A private copy of the set to damage."""
    return Path(shutil.copytree(coco, tmp_path / "coco"))


# --------------------------------------------------------------------------- generator


def test_generator_is_deterministic_per_seed_and_extends(tmp_path: Path) -> None:
    spec = SceneSpec(image_size=32, num_images=6)
    a = write_detection_dataset(tmp_path / "a", spec, seed=5)
    b = write_detection_dataset(tmp_path / "b", spec, seed=5)
    c = write_detection_dataset(tmp_path / "c", spec, seed=6)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 8  # 6 images, annotations.json, synthetic.json
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "annotations.json").read_bytes() != (c / "annotations.json").read_bytes()
    # Scene i depends on (seed, i) only: a longer set starts with the shorter one.
    longer = list(scenes(SceneSpec(image_size=32, num_images=9), seed=5))
    for short, long in zip(scenes(spec, seed=5), longer):
        assert np.array_equal(short.image, long.image)
        assert np.array_equal(short.boxes, long.boxes)


def test_generated_boxes_are_inside_apart_and_labelled(coco: Path) -> None:
    counts = []
    for scene in scenes(SPEC, seed=3):
        counts.append(len(scene.labels))
        x, y, w, h = scene.boxes.T if len(scene.boxes) else np.zeros((4, 0))
        assert np.all((x >= 0) & (y >= 0) & (x + w <= 48) & (y + h <= 48) & (w > 0))
        for i in range(len(scene.boxes)):
            for j in range(i):  # boxes never overlap
                a, b = scene.boxes[i], scene.boxes[j]
                assert (a[0] + a[2] < b[0] or b[0] + b[2] < a[0] or a[1] + a[3] < b[1]
                        or b[1] + b[3] < a[1])
    assert set(counts) == {0, 1, 2, 3}
    doc = json.loads((coco / "annotations.json").read_text())
    assert [c["name"] for c in doc["categories"]] == list(synthetic.SHAPES)
    assert len(doc["annotations"]) == sum(counts)


def test_generator_refuses_an_existing_folder_and_leaves_nothing_on_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="taken exists"):
        write_detection_dataset(tmp_path / "taken", SPEC)
    calls = []

    def failing_save(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        original(*args, **kwargs)

    original = synthetic._save_png
    monkeypatch.setattr(synthetic, "_save_png", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_detection_dataset(tmp_path / "new", SPEC)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no set, no temporary folder
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        write_detection_dataset(tmp_path / "sub" / "new", SPEC, seed=-1)
    with pytest.raises(ValueError, match="each shape once"):
        SceneSpec(shapes=("circle", "square"), distractors=("circle",))
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_ensure_writes_once_checks_the_manifest_and_survives_a_race(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SceneSpec(image_size=32, num_images=4)
    root = ensure_synthetic_dataset(tmp_path / "s", "detection", spec, seed=2)
    before = file_tree(root)
    assert ensure_synthetic_dataset(root, "detection", spec, seed=2) == root
    assert file_tree(root) == before
    with pytest.raises(ValueError, match="not the synthetic detection set of this spec and seed 3"):
        ensure_synthetic_dataset(root, "detection", spec, seed=3)
    with pytest.raises(ValueError, match="not the synthetic segmentation set"):
        ensure_synthetic_dataset(root, "segmentation", spec, seed=2)
    with pytest.raises(ValueError, match="unknown synthetic set 'depth'"):
        ensure_synthetic_dataset(tmp_path / "d", "depth", spec)

    # Another trial finishes writing the same set while this one is half-way through.
    original = synthetic._save_png

    def racing(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(synthetic, "_save_png", original)
        write_detection_dataset(tmp_path / "r", spec, seed=2)
        original(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_save_png", racing)
    assert ensure_synthetic_dataset(tmp_path / "r", "detection", spec, seed=2) == tmp_path / "r"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "s"]  # the loser's copy is gone
    # The winner's set, the same files as the set written above with this spec and seed.
    assert [f[:2] for f in file_tree(tmp_path / "r")] == [f[:2] for f in before]


# --------------------------------------------------------------------------- loader


@pytest.mark.parametrize("resolution", [48, 96, 20])
def test_boxes_and_labels_survive_resizing(coco: Path, resolution: int) -> None:
    split = make_detection_datasets(resolution, data_dir=coco, val_fraction=0.25, seed=0)
    assert split.classes == synthetic.SHAPES and split.num_classes == 3 and split.in_channels == 3
    expected = {f"{i:06d}.png": s for i, s in enumerate(scenes(SPEC, seed=3))}
    seen = []
    for dataset in (split.train, split.val):
        for sample, (image, target) in zip(dataset.samples, _items(dataset)):
            scene = expected[sample.path.name]
            seen.append(sample.path.name)
            assert image.shape == (3, resolution, resolution) and image.dtype == torch.float32
            xyxy = np.column_stack([scene.boxes[:, :2], scene.boxes[:, :2] + scene.boxes[:, 2:]])
            assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == xyxy.shape
            np.testing.assert_allclose(target["boxes"].numpy(), xyxy * resolution / 48, atol=2e-3)
            assert target["labels"].tolist() == scene.labels.tolist()
    assert sorted(seen) == sorted(expected)  # train and val partition the set


def test_images_are_the_written_pixels_normalised(coco: Path) -> None:
    split = make_detection_datasets(48, data_dir=coco, seed=0)
    image, _ = split.train[0]
    scene = list(scenes(SPEC, seed=3))[int(split.train.samples[0].path.stem)]
    pixels = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(image, (pixels - mean) / std)


def test_preloaded_and_per_item_decoding_give_the_same_items(
        coco: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preloaded = make_detection_datasets(20, data_dir=coco, seed=0)
    assert preloaded.train.images.stacked is not None
    monkeypatch.setattr(_common, "PRELOAD_BYTES", 0)
    per_item = make_detection_datasets(20, data_dir=coco, seed=0)
    assert per_item.train.images.stacked is None
    for (a, ta), (b, tb) in zip(_items(preloaded.train), _items(per_item.train)):
        assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])


def _names(dataset: torch.utils.data.Dataset) -> list[str]:
    return [s.path.name for s in dataset.samples]


def test_split_is_seeded_stratified_and_capped(coco: Path) -> None:
    a = make_detection_datasets(32, data_dir=coco, seed=1)
    b = make_detection_datasets(32, data_dir=coco, seed=1)
    c = make_detection_datasets(32, data_dir=coco, seed=2)
    assert _names(a.train) == _names(b.train) and _names(a.val) == _names(b.val)
    assert _names(a.val) != _names(c.val)
    assert not set(_names(a.train)) & set(_names(a.val))
    # Strata are each image's most frequent label, or 3 (no boxes); 20% of each goes to val.
    strata = [Counter(_stratum(s, 3) for s in d.samples) for d in (a.train, a.val)]
    for key, n_val in strata[1].items():
        assert n_val == min(max(round(0.2 * (strata[0][key] + n_val)), 1),
                            strata[0][key] + n_val - 1)
    assert set(strata[1]) == {0, 1, 2, 3}
    capped = make_detection_datasets(32, data_dir=coco, seed=1, max_train=7, max_val=2)
    assert len(capped.train) == 7 and set(_names(capped.train)) <= set(_names(a.train))
    assert len(capped.val) == 2 and set(_names(capped.val)) <= set(_names(a.val))


def test_a_train_and_val_layout_is_its_own_split(tmp_path: Path) -> None:
    write_detection_dataset(tmp_path / "sets" / "train", SceneSpec(image_size=32, num_images=5))
    write_detection_dataset(tmp_path / "sets" / "val", SceneSpec(image_size=32, num_images=3),
                            seed=1)
    split = make_detection_datasets(32, data_dir=tmp_path / "sets")
    assert (len(split.train), len(split.val)) == (5, 3)
    assert split.val.samples[0].path.parent == tmp_path / "sets" / "val" / "images"


def test_presence_sets_have_empty_images_and_collate(tmp_path: Path) -> None:
    spec = dataclasses.replace(PRESENCE, image_size=40, num_images=30)
    root = write_detection_dataset(tmp_path / "presence", spec, seed=0)
    split = make_detection_datasets(40, data_dir=root, seed=0)
    assert split.classes == ("person",) and split.num_classes == 1
    targets = [t for _, t in _items(split.train) + _items(split.val)]
    counts = [len(t["labels"]) for t in targets]
    assert 0 in counts and max(counts) >= 2
    empty = targets[counts.index(0)]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64
    loader = DataLoader(split.train, batch_size=8, collate_fn=detection_collate)
    images, batch = next(iter(loader))
    assert images.shape == (8, 3, 40, 40) and len(batch) == 8
    assert [len(t["boxes"]) for t in batch] == [len(split.train[i][1]["boxes"]) for i in range(8)]
    assert len({len(t["boxes"]) for t in batch}) > 1  # the counts really vary within a batch


# --------------------------------------------------------------------------- bad annotations


def _edit(doc: dict, case: str) -> str | None:
    """Damage ``doc`` in place; returns replacement text for cases that are not JSON."""
    ann = doc["annotations"][0]
    if case == "outside":
        ann["bbox"] = [40.0, 10.0, 20.0, 5.0]
    elif case == "negative":
        ann["bbox"][3] = -2.0
    elif case == "category":
        ann["category_id"] = 99
    elif case == "image_id":
        ann["image_id"] = 12345
    elif case == "missing_file":
        doc["images"][4]["file_name"] = "nowhere.png"
    elif case == "size":
        doc["images"][4]["width"] = 50
    elif case == "duplicate":
        doc["images"][4]["id"] = doc["images"][3]["id"]
    elif case == "nan":
        return json.dumps(doc).replace(json.dumps(ann["bbox"]), "[NaN, 1, 2, 3]", 1)
    elif case == "malformed":
        return json.dumps(doc)[:-40]
    return None


@pytest.mark.parametrize("case, message", [
    ("outside", r"annotations\[0\] \(id 1, image '\d{6}\.png'\): bbox .* outside the 48x48"),
    ("negative", r"annotations\[0\] \(id 1, image '\d{6}\.png'\): bbox .* not positive"),
    ("category", r"annotations\[0\] \(id 1, image '\d{6}\.png'\): unknown category id 99"),
    ("image_id", r"annotations\[0\] \(id 1\): unknown image id 12345"),
    ("missing_file", r"images\[4\]: image file .*nowhere\.png does not exist"),
    ("size", r"images\[4\]: .*000004\.png is 48x48, the entry says 50x48"),
    ("duplicate", r"images\[4\]: duplicate image id 4"),
    ("nan", r"malformed JSON \(NaN is not JSON\)"),
    ("malformed", r"malformed JSON \(line 1 column \d+"),
])
def test_bad_annotations_are_one_line_naming_file_and_entry(broken: Path, case: str,
                                                           message: str) -> None:
    ann_file = broken / "annotations.json"
    doc = json.loads(ann_file.read_text())
    text = _edit(doc, case)
    ann_file.write_text(text if text is not None else json.dumps(doc))
    before = file_tree(broken.parent)
    with pytest.raises(ValueError, match=message) as info:
        make_detection_datasets(32, data_dir=broken)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(ann_file))
    assert file_tree(broken.parent) == before


def test_crowd_boxes_are_checked_then_dropped(broken: Path) -> None:
    ann_file = broken / "annotations.json"
    doc = json.loads(ann_file.read_text())
    doc["annotations"][0]["iscrowd"] = 1
    ann_file.write_text(json.dumps(doc))
    _, samples = read_coco(ann_file, broken / "images")
    assert sum(len(s.labels) for s in samples) == len(doc["annotations"]) - 1


def test_missing_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no annotations.json in .*empty"):
        make_detection_datasets(32, data_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="resolution must be an int >= 4"):
        make_detection_datasets(2, data_dir=tmp_path)
