"""Deterministic synthetic scenes written in the COCO and VOC layouts the loaders read.

A scene is a textured background (Gaussian noise around one colour, or noisy stripes at a random
angle and period) with 0 .. ``max_objects`` solid, noisy shapes (circle, square, upright
triangle), each inside the image and apart from the others by at least one pixel plus the
ignore border, so boxes never overlap and neither do masks. The shapes listed in ``shapes`` are
the classes, in label order; ``distractors`` are drawn but not annotated (background in the
masks), which makes presence detection a real task: :data:`PRESENCE` annotates triangles as
``person`` among circles and squares, and 62% of its images have no person
(a quarter have no shape at all).

Scene ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng((s, i))`` alone, so the same
seed gives byte-identical files, a larger ``num_images`` extends a smaller set, and
:func:`write_detection_dataset` and :func:`write_segmentation_dataset` with one spec and seed
write the same scenes (same image bytes), one with boxes, one with masks.

A box is the shape's exact extent ``[x, y, s, s]``; pixels belong to a shape when their centre
is inside it, so every labelled pixel lies inside its box and each box's centre pixel is labelled
with the box's class (a triangle's box centre is halfway down, where the triangle is half its
base wide). Writers fill a hidden temporary folder beside ``root`` and rename it into place:
a failed or killed run leaves no partial dataset, and an existing ``root`` is refused. Each set
carries a ``synthetic.json`` (kind, seed, spec), which :func:`ensure_synthetic_dataset` checks
so that a config can name a synthetic set and have it written on first use.

``python -m nas.datasets.synthetic OUT [--presence] [--images N] [--size S] [--seed K]`` writes
``OUT/detection`` and ``OUT/segmentation``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.data import _is_int
from nas.datasets import detection, segmentation

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
MANIFEST = "synthetic.json"
_PLACEMENT_TRIES = 20
_MIN_CONTRAST = 120  # summed |RGB difference| between a shape and every background colour


@dataclass(frozen=True)
class SceneSpec:
    """What the scenes of one synthetic set look like.

    ``min_size``/``max_size`` are a shape's side as a fraction of ``image_size``;
    ``ignore_border`` draws a ring of that many pixels of 255 ("ignore", as VOC's outlines)
    around each labelled shape in the masks.
    """

    image_size: int = 64
    num_images: int = 300
    max_objects: int = 3
    shapes: tuple[str, ...] = SHAPES
    class_names: tuple[str, ...] | None = None
    distractors: tuple[str, ...] = ()
    min_size: float = 0.2
    max_size: float = 0.4
    ignore_border: int = 0

    def __post_init__(self) -> None:
        for name in ("image_size", "num_images", "max_objects", "ignore_border"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative int, got {getattr(self, name)!r}")
        if self.image_size < 16 or self.num_images < 1:
            raise ValueError(f"need image_size >= 16 and num_images >= 1, got "
                             f"{self.image_size} and {self.num_images}")
        unknown = [s for s in (*self.shapes, *self.distractors) if s not in SHAPES]
        kinds = (*self.shapes, *self.distractors)
        if not self.shapes or unknown or len(set(kinds)) != len(kinds):
            raise ValueError(f"shapes (non-empty) and distractors (each shape once) are "
                             f"drawn from {', '.join(SHAPES)}; got {self.shapes} and "
                             f"{self.distractors}")
        if self.class_names is not None and len(self.class_names) != len(self.shapes):
            raise ValueError(f"class_names {self.class_names} must name each of {self.shapes}")
        if not 0.05 <= self.min_size <= self.max_size <= 0.9:
            raise ValueError(f"need 0.05 <= min_size <= max_size <= 0.9, got {self.min_size} "
                             f"and {self.max_size}")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.class_names if self.class_names is not None else self.shapes


PRESENCE = SceneSpec(shapes=("triangle",), class_names=("person",),
                     distractors=("circle", "square"))


@dataclass(frozen=True)
class Scene:
    """One rendered scene: ``image`` uint8 ``(S, S, 3)``; ``boxes`` float ``(N, 4)`` as COCO
    ``[x, y, w, h]``; ``labels`` int ``(N,)`` indexing ``spec.classes``; ``mask`` uint8
    ``(S, S)`` with 0 background, ``label + 1`` per labelled shape and 255 ignore."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    mask: np.ndarray


def _inside(shape: str, x: float, y: float, side: float, px: np.ndarray,
            py: np.ndarray) -> np.ndarray:
    """Pixels (given by their centres ``px``, ``py``) inside a shape with box ``[x, y, s, s]``."""
    in_box = (px >= x) & (px <= x + side) & (py >= y) & (py <= y + side)
    if shape == "square":
        return in_box
    cx, cy = x + side / 2, y + side / 2
    if shape == "circle":
        return (px - cx) ** 2 + (py - cy) ** 2 <= (side / 2) ** 2
    return in_box & (np.abs(px - cx) <= (py - y) / 2)  # apex at the top centre


def _background(rng: np.random.Generator, size: int, py: np.ndarray,
                px: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    if rng.random() < 0.5:
        colours = [rng.uniform(0, 255, 3)]
        image = np.broadcast_to(colours[0], (size, size, 3)) + rng.normal(0, 20, (size, size, 3))
    else:
        colours = [rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)]
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        phase = (px * np.cos(angle) + py * np.sin(angle)) / period
        image = np.where((np.sin(2 * np.pi * phase) > 0)[..., None], colours[0], colours[1])
        image = image + rng.normal(0, 10, (size, size, 3))
    return image, colours


def render_scene(spec: SceneSpec, rng: np.random.Generator) -> Scene:
    """Draw one scene from ``rng`` (see the module docstring)."""
    size = spec.image_size
    py, px = np.mgrid[0:size, 0:size] + 0.5
    image, colours = _background(rng, size, py, px)
    mask = np.zeros((size, size), dtype=np.uint8)
    kinds = (*spec.shapes, *spec.distractors)
    gap = 1 + spec.ignore_border
    placed: list[tuple[float, float, float]] = []
    boxes, labels = [], []
    for _ in range(int(rng.integers(0, spec.max_objects + 1))):
        shape = kinds[int(rng.integers(len(kinds)))]
        for _ in range(_PLACEMENT_TRIES):
            side = rng.uniform(spec.min_size, spec.max_size) * size
            x, y = rng.uniform(0, size - side, 2)
            if all(x + side + gap <= ox or ox + oside + gap <= x or y + side + gap <= oy
                   or oy + oside + gap <= y for ox, oy, oside in placed):
                break
        else:
            continue  # no room left for this shape
        placed.append((x, y, side))
        colour = rng.uniform(0, 255, 3)
        while min(np.abs(colour - c).sum() for c in colours) < _MIN_CONTRAST:
            colour = rng.uniform(0, 255, 3)
        inside = _inside(shape, x, y, side, px, py)
        image[inside] = colour + rng.normal(0, 10, (int(inside.sum()), 3))
        if shape in spec.shapes:
            label = spec.shapes.index(shape)
            if spec.ignore_border:
                ring = _inside(shape, x - spec.ignore_border, y - spec.ignore_border,
                               side + 2 * spec.ignore_border, px, py) & ~inside
                mask[ring] = segmentation.IGNORE_INDEX
            mask[inside] = label + 1
            boxes.append([x, y, side, side])
            labels.append(label)
    return Scene(np.clip(np.rint(image), 0, 255).astype(np.uint8),
                 np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                 np.asarray(labels, dtype=np.int64), mask)


def scenes(spec: SceneSpec, seed: int) -> Iterator[Scene]:
    """The ``spec.num_images`` scenes of ``seed``, drawn lazily; scene ``i`` from
    ``default_rng((seed, i))``. The seed is checked now, before anything is drawn."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return (render_scene(spec, np.random.default_rng((int(seed), i)))
            for i in range(spec.num_images))


@contextlib.contextmanager
def _new_folder(root: Path) -> Iterator[Path]:
    """A hidden temporary folder beside ``root``, renamed to ``root`` when the block ends
    normally and removed when it raises."""
    if root.exists():
        raise ValueError(f"{root} exists; synthetic data is written to a new folder only")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        yield tmp
        os.rename(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _save_png(array: np.ndarray, path: Path, palette: Sequence[int] | None = None) -> None:
    from PIL import Image

    image = Image.fromarray(array)
    if palette is not None:
        image = image.convert("P") if image.mode != "P" else image
        image.putpalette(palette)
    image.save(path, format="PNG")


def voc_palette() -> list[int]:
    """VOC's 256-colour palette (``bitget`` colour map: 0 black, 1 maroon, 255 cream) as the
    flat ``[r, g, b, ...]`` list ``PIL.Image.putpalette`` takes."""
    palette = []
    for index in range(256):
        rgb, code = [0, 0, 0], index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
        palette.extend(rgb)
    return palette


def write_detection_dataset(root: str | Path, spec: SceneSpec = SceneSpec(),
                            seed: int = 0) -> Path:
    """Write ``spec.num_images`` scenes as ``root/annotations.json`` + ``root/images/*.png``
    (COCO ids from 1, category ``k + 1`` for class ``k``); returns ``root``."""
    root = Path(root).expanduser()
    images, annotations = [], []
    drawn = scenes(spec, seed)
    with _new_folder(root) as tmp:
        (tmp / detection.IMAGES).mkdir()
        for i, scene in enumerate(drawn):
            name = f"{i:06d}.png"
            _save_png(scene.image, tmp / detection.IMAGES / name)
            images.append({"id": i + 1, "file_name": name, "width": spec.image_size,
                           "height": spec.image_size})
            for box, label in zip(scene.boxes, scene.labels):
                x, y, w, h = (round(float(v), 3) for v in box)
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                    "category_id": int(label) + 1, "bbox": [x, y, w, h],
                                    "area": round(w * h, 3), "iscrowd": 0})
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(spec.classes)]
        doc = {"images": images, "annotations": annotations, "categories": categories}
        (tmp / detection.ANNOTATIONS).write_text(json.dumps(doc, indent=1) + "\n")
        (tmp / MANIFEST).write_text(_manifest("detection", spec, seed))
    return root


def write_segmentation_dataset(root: str | Path, spec: SceneSpec = SceneSpec(),
                               seed: int = 0) -> Path:
    """Write the same scenes as ``root/JPEGImages/*.png`` (lossless, the loader takes any image
    suffix), ``root/SegmentationClass/*.png`` (VOC palette) and ``root/classes.txt``
    (``background`` first); returns ``root``."""
    root = Path(root).expanduser()
    palette, drawn = voc_palette(), scenes(spec, seed)
    with _new_folder(root) as tmp:
        (tmp / segmentation.IMAGES).mkdir()
        (tmp / segmentation.MASKS).mkdir()
        for i, scene in enumerate(drawn):
            _save_png(scene.image, tmp / segmentation.IMAGES / f"{i:06d}.png")
            _save_png(scene.mask, tmp / segmentation.MASKS / f"{i:06d}.png", palette)
        (tmp / segmentation.CLASSES).write_text("\n".join(("background", *spec.classes)) + "\n")
        (tmp / MANIFEST).write_text(_manifest("segmentation", spec, seed))
    return root


WRITERS: dict[str, Callable[[str | Path, SceneSpec, int], Path]] = {
    "detection": write_detection_dataset,
    "segmentation": write_segmentation_dataset,
}


def _manifest(kind: str, spec: SceneSpec, seed: int) -> str:
    """What a synthetic set was written from; the loaders ignore the file."""
    return json.dumps({"kind": kind, "seed": int(seed), "spec": dataclasses.asdict(spec)},
                      indent=1, sort_keys=True) + "\n"


def ensure_synthetic_dataset(root: str | Path, kind: str, spec: SceneSpec = SceneSpec(),
                             seed: int = 0) -> Path:
    """``root``, holding the synthetic ``kind`` set of ``spec`` and ``seed``: written now if
    absent, else checked against its ``synthetic.json``. Trials that all call this at start-up
    write the set once; when two race, the loser's rename fails and its copy is dropped (the
    sets are identical, being deterministic).

    Raises:
        ValueError: on an unknown ``kind``, or a ``root`` that holds anything else (another
            spec or seed, or no synthetic set at all).
    """
    if kind not in WRITERS:
        raise ValueError(f"unknown synthetic set {kind!r}; choose one of {', '.join(WRITERS)}")
    root = Path(root).expanduser()
    if not root.exists():
        try:
            WRITERS[kind](root, spec, seed)
        except (OSError, ValueError):
            if not root.exists():
                raise
    wanted = _manifest(kind, spec, seed)
    try:
        found = (root / MANIFEST).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        found = None
    if found != wanted:
        raise ValueError(f"{root} exists but is not the synthetic {kind} set of this spec and "
                         f"seed {seed} (see its {MANIFEST}); pick another folder or remove it")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.datasets.synthetic",
                                     description="Write synthetic detection and segmentation "
                                     "sets to OUT/detection and OUT/segmentation.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--presence", action="store_true",
                        help="one class, 'person' (triangles), among circle/square distractors")
    parser.add_argument("--images", type=int, default=SceneSpec.num_images)
    parser.add_argument("--size", type=int, default=SceneSpec.image_size)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    base = PRESENCE if args.presence else SceneSpec()
    try:
        spec = dataclasses.replace(base, num_images=args.images, image_size=args.size)
        write_detection_dataset(args.out / "detection", spec, args.seed)
        write_segmentation_dataset(args.out / "segmentation", spec, args.seed)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"wrote {spec.num_images} scenes of {spec.image_size}x{spec.image_size} to "
          f"{args.out / 'detection'} and {args.out / 'segmentation'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
