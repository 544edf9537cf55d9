"""The CMP Facade data set (Tylecek & Sara, "Spatial Pattern Templates for Recognition of Objects
with Regular Structure", GCPR 2013) as pix2pix pairs (Isola et al., CVPR 2017): label map -> photo.

Two sources are accepted:

* the CMP "base" folder (``cmp_bNNNN.png`` palette label maps + ``cmp_bNNNN.jpg`` photos), which
  :func:`build_facades` turns into the aligned format once;
* the pix2pix release (``facades.tar.gz``: ``train/ val/ test/`` of 512x256 jpgs), used as is;
* the same release as the course notes lay it out, one folder per side: ``train/a``, ``train/b``,
  ``test/a``, ``test/b`` (no ``val/``), read by :func:`~gankit.data.paired.load_pair_folders`.

Which side holds the labels differs. gankit's build puts the label map on the left (A) and the
photo on the right (B), so labels -> photo is ``AtoB``; the pix2pix release has the photo on the
left, so there labels -> photo is ``BtoA`` (its README trains with ``--direction BtoA``).
:func:`facades_layout` tells which applies to a folder: from gankit's manifest, else by colour (a
label map is almost all :data:`CMP_PALETTE` colours, a photo is not), else the release's ``BtoA``.

Without a ``val/`` split, validation pairs are held out of ``train/`` by the rule of
:mod:`gankit.data.splits` (every 10th pair by name); ``test/`` stays untouched.

Where things go: :func:`gankit.paths.data_root` is ``$GANKIT_DATA`` if set, else the cache folder; the
aligned facades live in ``<data_root>/facades`` (built from CMP there, or downloaded there).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from gankit.locks import lock_file
from gankit.paths import cache_dir, data_root

from .errors import DataError
from .images import ImageReadError, SkipReport, decode_many, list_images, open_image, to_rgb
from .paired import pair_dirs

__all__ = [
    "CMP_PALETTE",
    "FACADES_URL",
    "build_facades",
    "find_facades",
    "download_facades",
    "facades_direction",
    "facades_layout",
    "facades_origin",
    "label_map_fraction",
    "data_root",
    "split_of",
]

FACADES_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "gankit-facades-v1"
_BUILDING = ".gankit-building"  # present while a build is under way: its split folders may be replaced
"""Written first and removed last by a build (it names the source): a folder holding it is unfinished."""
DOWNLOADED = ".gankit-downloaded"
"""Written into a folder that :func:`download_facades` filled, so ``gankit cache`` knows it is gankit's."""

CMP_PALETTE: dict[int, tuple[int, int, int]] = {
    1: (0, 0, 170),  # background
    2: (0, 0, 255),  # facade
    3: (0, 85, 255),  # window
    4: (0, 170, 255),  # door
    5: (0, 255, 255),  # cornice
    6: (85, 255, 170),  # sill
    7: (170, 255, 85),  # balcony
    8: (255, 255, 0),  # blind
    9: (255, 170, 0),  # deco
    10: (255, 85, 0),  # molding
    11: (255, 0, 0),  # pillar
    12: (170, 0, 0),  # shop
}
"""Label index -> RGB, the colours of the pix2pix facades label maps. Other indices become black."""

_LUT = np.zeros((256, 3), dtype=np.uint8)
for _i, _rgb in CMP_PALETTE.items():
    _LUT[_i] = _rgb


def split_of(index: int) -> str:
    """The fixed split of the ``index``-th pair by sorted file name: 8 of every 10 train, then one val, one test."""
    return {8: "val", 9: "test"}.get(index % 10, "train")


def labels_to_rgb(labels: np.ndarray) -> np.ndarray:
    """(H, W) label indices -> (H, W, 3) uint8 colours by :data:`CMP_PALETTE`."""
    return _LUT[labels]


def _scan_cmp(src: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """``cmp_b*`` label maps and photos of a CMP folder, by stem."""
    pngs: dict[str, Path] = {}
    jpgs: dict[str, Path] = {}
    for p in src.iterdir():
        if p.is_file() and p.name.startswith("cmp_b"):
            if p.suffix.lower() == ".png":
                pngs[p.stem] = p
            elif p.suffix.lower() in (".jpg", ".jpeg"):
                jpgs[p.stem] = p
    return pngs, jpgs


def _convert_pair(png: Path, jpg: Path, out: Path, size: int) -> None:
    label_img = open_image(png)
    # The indices are the truth; the palette stored in the file is not trusted (nor needed).
    if label_img.mode not in ("P", "L"):
        raise ImageReadError(png, "not a label map", f"mode {label_img.mode}, expected palette indices")
    # NEAREST keeps every pixel a valid class: interpolating indices would invent classes at edges.
    labels = np.asarray(label_img.resize((size, size), Image.Resampling.NEAREST), dtype=np.uint8)
    photo = to_rgb(open_image(jpg)).resize((size, size), Image.Resampling.BICUBIC)
    pair = Image.new("RGB", (2 * size, size))
    pair.paste(Image.fromarray(labels_to_rgb(labels)), (0, 0))
    pair.paste(photo, (size, 0))
    # 4:4:4 chroma: the default 4:2:0 subsampling would smear the label colours across class borders.
    pair.save(out, quality=95, subsampling=0)


def _facades_lock(dst: Path, log: Callable[[str], None]) -> AbstractContextManager[None]:
    """The lock a process holds while it builds or downloads into ``dst``; a second one waits, then
    finds ``dst`` finished and reuses it (two writers would mix their files, or their archive bytes)."""
    return lock_file(
        dst.parent / f".{dst.name}.lock",
        on_wait=lambda holder: log(f"waiting for another process building the facades set in {dst} ({holder}) ..."),
        note="building the facades set",
        remove=True,
    )


def _building_source(dst: Path) -> Path | None:
    """The CMP folder an unfinished build of ``dst`` was building from, if its marker says."""
    try:
        return Path(json.loads((dst / _BUILDING).read_text())["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prepare_dst(dst: Path, src: Path) -> None:
    splits = [dst / s for s in ("train", "val", "test") if (dst / s).exists()]
    if splits and not ((dst / MANIFEST).exists() or (dst / _BUILDING).exists()):
        raise DataError(
            f"{dst} already holds {', '.join(p.name for p in splits)}/ not built by gankit; "
            "refusing to overwrite it (choose another destination)"
        )
    dst.mkdir(parents=True, exist_ok=True)
    marker = {"note": "a gankit facades build is (or was, if interrupted) under way", "source": str(src.resolve())}
    (dst / _BUILDING).write_text(json.dumps(marker) + "\n")
    (dst / MANIFEST).unlink(missing_ok=True)
    for p in splits:
        shutil.rmtree(p)


def build_facades(
    src: str | Path, dst: str | Path, *, size: int = 256, workers: int = 0, log: Callable[[str], None] = print
) -> dict:
    """Build pix2pix pairs from the CMP Facade base folder ``src`` into ``dst/{train,val,test}/``.

    Each ``cmp_bNNNN.png`` label map is coloured from its label indices with :data:`CMP_PALETTE`,
    resized (nearest) to ``size`` x ``size``, and put left of its ``cmp_bNNNN.jpg`` photo (bicubic,
    ``size`` x ``size``): ``dst/<split>/cmp_bNNNN.jpg``, 512x256 for size 256, A = labels, B = photo.

    Split, fixed by sorted file name over the complete pairs: index % 10 == 8 -> val,
    index % 10 == 9 -> test, the rest train. For the 378 pairs of CMP base that is
    train 304, val 37, test 37. A png without its jpg (or the reverse) and unreadable files are
    skipped and counted; a file skipped during decoding leaves the other pairs' splits unchanged.

    Writes ``dst/manifest.json`` last (so an interrupted build is never mistaken for a complete one)
    and returns its content: counts per split, skips, source and layout. While building it holds a
    lock beside ``dst``: a second process building into ``dst`` waits, and then keeps the first one's
    build (as does any call when ``dst`` already holds a complete build of ``src`` at ``size``).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"CMP facades folder {src} does not exist")
    pngs, jpgs = _scan_cmp(src)
    if not pngs and not jpgs:
        raise DataError(f"no cmp_b*.png label maps or cmp_b*.jpg photos in {src}")
    report = SkipReport(f"{src}")
    for stem in sorted(set(pngs) ^ set(jpgs)):
        have = pngs.get(stem) or jpgs[stem]
        report.add(ImageReadError(have, "no partner", "label map without photo or photo without label map"))
    stems = sorted(set(pngs) & set(jpgs))
    if not stems:
        raise DataError(f"no complete label/photo pair in {src} ({report.summary()})")

    with _facades_lock(dst, log):
        if _manifest_matches(dst, src, size):
            return json.loads((dst / MANIFEST).read_text())
        return _build(src, dst, pngs, jpgs, stems, report, size=size, workers=workers, log=log)


def _build(
    src: Path,
    dst: Path,
    pngs: dict[str, Path],
    jpgs: dict[str, Path],
    stems: list[str],
    report: SkipReport,
    *,
    size: int,
    workers: int,
    log: Callable[[str], None],
) -> dict:
    """The body of :func:`build_facades`, run under its lock."""
    _prepare_dst(dst, src)
    for s in ("train", "val", "test"):
        (dst / s).mkdir()
    jobs = [(stem, split_of(i)) for i, stem in enumerate(stems)]

    def convert(job: tuple[str, str]) -> str:
        stem, split = job
        _convert_pair(pngs[stem], jpgs[stem], dst / split / f"{stem}.jpg", size)
        return split

    done = decode_many(jobs, convert, report=report, desc="building facades", workers=workers)
    counts = {s: sum(1 for _, r in done if r == s) for s in ("train", "val", "test")}
    if report.total:
        log(report.summary())
    manifest = {
        "format": MANIFEST_FORMAT,
        "source": str(src.resolve()),
        "source_files": sum(map(len, _scan_cmp(src))),
        "source_pairs": len(stems),
        "size": size,
        "counts": counts,
        "skipped": dict(report.reasons),
        "layout": "A (left) = CMP label map in CMP_PALETTE colours, B (right) = photo",
        "labels_to_photo": "AtoB",
        "split": "sorted by name; index % 10 == 8 -> val, index % 10 == 9 -> test, else train",
    }
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (dst / _BUILDING).unlink(missing_ok=True)
    return manifest


def facades_origin(folder: str | Path) -> str | None:
    """How gankit made ``folder``: ``"built from SRC"``, ``"downloaded from URL"``, or ``None`` when
    gankit did not make it (a folder the user placed, which ``gankit cache --clear`` never removes)."""
    folder = Path(folder)
    try:
        m = json.loads((folder / MANIFEST).read_text())
        if m.get("format") == MANIFEST_FORMAT:
            return f"built from {m.get('source', '?')}"
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return f"downloaded from {(folder / DOWNLOADED).read_text().strip() or FACADES_URL}"
    except OSError:
        return None


def is_cmp_base(folder: Path) -> bool:
    """Whether ``folder`` holds the CMP facades base files (``cmp_b*.png``) that gankit builds pairs from."""
    return any(folder.glob("cmp_b*.png"))


def _manifest_matches(dst: Path, src: Path, size: int | None = None) -> bool:
    """True if ``dst`` holds a complete gankit build of ``src`` (at ``size``, if given), with the files
    the manifest lists."""
    if (dst / _BUILDING).exists():
        return False  # a build is under way, or was killed after writing the manifest
    try:
        m = json.loads((dst / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or m.get("source") != str(src.resolve()):
        return False
    if size is not None and m.get("size") != size:
        return False
    if m.get("source_files") != sum(map(len, _scan_cmp(src))):
        return False  # files were added or removed in the source since the build
    counts = m.get("counts", {})
    return all(len(list((dst / s).glob("*.jpg"))) == counts.get(s, -1) for s in ("train", "val", "test"))


def label_map_fraction(img: Image.Image) -> float:
    """The fraction of pixels within 40 levels (every channel) of a :data:`CMP_PALETTE` colour.

    Label maps score near 1 even as JPEGs; photos of facades, being mostly unsaturated, score low.
    """
    small = np.asarray(to_rgb(img).resize((64, 64), Image.Resampling.NEAREST), dtype=np.int16)
    palette = np.array(list(CMP_PALETTE.values()), dtype=np.int16)
    distance = np.abs(small[:, :, None, :] - palette[None, None]).max(axis=-1).min(axis=-1)
    return float((distance <= 40).mean())


_SAMPLE_FILES = 4
"""Files looked at to tell the label side by colour."""


def _label_side(first: list[Image.Image], second: list[Image.Image]) -> int | None:
    """0 or 1: which of two lists of images are the label maps; None when colour does not tell."""
    if not first or not second:
        return None
    scores = [float(np.mean([label_map_fraction(i) for i in side])) for side in (first, second)]
    for side in (0, 1):
        if scores[side] >= 0.6 and scores[1 - side] <= 0.4:
            return side
    return None


def _open_some(files: list[Path]) -> list[Image.Image]:
    out = []
    for f in files[:_SAMPLE_FILES]:
        try:
            out.append(to_rgb(open_image(f)))
        except (ImageReadError, OSError):
            continue  # the loader skips and counts it; here it just does not vote
    return out


class FacadesLayout(NamedTuple):
    """How a facades folder keeps its pairs, and which direction maps labels to photos."""

    layout: str
    """"aligned" (A|B files) or "pair-folders" (a/ and b/ folders)."""
    direction: str
    """The ``direction`` that maps labels to photos."""
    how: str
    """How ``direction`` was decided, for the log."""
    certain: bool
    """False when it is only the release's convention (colour did not tell, no manifest)."""


def facades_layout(root: str | Path) -> FacadesLayout:
    """The :class:`FacadesLayout` of a facades folder: gankit's manifest, else colour, else ``BtoA``."""
    root = Path(root)
    split_root = next((root / s for s in ("train", "val", "test") if (root / s).is_dir()), root)
    dirs = pair_dirs(split_root)
    if dirs is not None:
        a, b = (_open_some(list_images(d, recursive=False)) for d in dirs)
        side = _label_side(a, b)
        if side is None:
            how = f"assumed label maps in {dirs[1].name}/ (colours did not tell)"
            return FacadesLayout("pair-folders", "BtoA", how, False)
        labels, photos = (dirs[1], dirs[0]) if side else (dirs[0], dirs[1])
        how = f"label maps in {labels.name}/, photos in {photos.name}/ (by colour)"
        return FacadesLayout("pair-folders", "BtoA" if side else "AtoB", how, True)
    try:
        direction = str(json.loads((root / MANIFEST).read_text())["labels_to_photo"])
        return FacadesLayout("aligned", direction, f"{MANIFEST} of the gankit build", True)
    except (OSError, ValueError, KeyError):
        pass
    pairs = _open_some(list_images(split_root, recursive=False)) if split_root.is_dir() else []
    halves = [(p.crop((0, 0, p.width // 2, p.height)), p.crop((p.width // 2, 0, p.width, p.height))) for p in pairs]
    side = _label_side([h[0] for h in halves], [h[1] for h in halves])
    if side is None:
        return FacadesLayout("aligned", "BtoA", "assumed label maps on the right, as in the pix2pix release", False)
    how = f"label maps on the {'right' if side else 'left'} (by colour)"
    return FacadesLayout("aligned", "BtoA" if side else "AtoB", how, True)


def facades_direction(root: str | Path) -> str:
    """The ``direction`` that maps labels to photos for a facades folder (see :func:`facades_layout`).

    ``AtoB`` for a gankit build (labels left); ``BtoA`` for the pix2pix release (photo left).
    """
    return facades_layout(root).direction


def _resolve(folder: Path, log: Callable[[str], None]) -> Path | None:
    if is_cmp_base(folder):
        target = data_root() / "facades"
        if not _manifest_matches(target, folder):
            log(f"building pix2pix facades pairs from {folder} into {target}")
            build_facades(folder, target, log=log)  # waits for, then reuses, another process's build
        return target
    if (folder / _BUILDING).exists():  # being built by another process, or a build was killed
        src = _building_source(folder)
        if src is None or not src.is_dir() or not is_cmp_base(src):
            raise DataError(
                f"{folder} holds an unfinished gankit facades build (interrupted, no {MANIFEST}); pass the "
                "CMP Facade base folder (cmp_b*.png + cmp_b*.jpg) as the data path to rebuild it, or delete it"
            )
        if not _manifest_matches(folder, src):
            log(f"{folder} holds an unfinished facades build; finishing it from {src}")
            build_facades(src, folder, log=log)
        return folder
    if (folder / "train").is_dir() or pair_dirs(folder) is not None:
        return folder
    if (folder / "facades").is_dir() and folder.name != "facades":
        return _resolve(folder / "facades", log)
    return None


def find_facades(path: str | Path | None = None, *, log: Callable[[str], None] = print) -> Path:
    """Locate (building or downloading if needed) an aligned facades folder with ``train/ val/ test/``.

    ``path`` may be the CMP base folder (built once into ``<data_root>/facades`` and reused while
    its manifest matches), an aligned folder with ``train/`` (returned as is), or a folder holding
    ``facades/``. Without ``path``: ``$GANKIT_DATA/facades``, then ``~/.cache/gankit/facades``, and
    only then :func:`download_facades` into ``<data_root>/facades``.
    """
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DataError(f"facades folder {folder} does not exist")
        found = _resolve(folder, log)
        if found is None:
            raise DataError(
                f"{folder} is neither the CMP Facade base folder (cmp_b*.png + cmp_b*.jpg) nor a pix2pix "
                "facades folder (train/ val/ test/ of A|B jpgs, or train/a, train/b, test/a, test/b)"
            )
        return found
    candidates = []
    if os.environ.get("GANKIT_DATA"):
        candidates.append(Path(os.environ["GANKIT_DATA"]).expanduser() / "facades")
    candidates.append(cache_dir() / "facades")
    for c in candidates:
        if c.is_dir() and (found := _resolve(c, log)) is not None:
            return found
    return download_facades(data_root() / "facades", log=log)


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract regular files and folders only, all inside ``dest`` (no links, devices, ``..`` or absolute paths)."""
    dest = dest.resolve()
    for m in tar.getmembers():
        target = (dest / m.name).resolve()
        if not (m.isfile() or m.isdir()) or not target.is_relative_to(dest):
            raise DataError(f"refusing to extract {m.name!r} from the facades archive (unsafe path or type)")
    if hasattr(tarfile, "data_filter"):  # Python >= 3.12 (and security backports): checks again
        tar.extractall(dest, filter="data")
    else:
        tar.extractall(dest)


def download_facades(
    dest: str | Path, *, url: str = FACADES_URL, timeout: float = 60.0, log: Callable[[str], None] = print
) -> Path:
    """Download and unpack the pix2pix facades release (~30 MB) into ``dest``; returns ``dest``.

    On a network failure this raises :class:`DataError` saying where to put the files by hand. A
    second process downloading into ``dest`` at the same time waits for the first, then uses its
    download: the release appears in ``dest`` whole (unpacked beside it, then renamed).
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _facades_lock(dest, log):
        if (dest / "train").is_dir() and not (dest / _BUILDING).exists():
            log(f"using the facades set in {dest} (downloaded by another process)")
            return dest
        if dest.exists() and any(dest.iterdir()):
            raise DataError(f"{dest} exists and is not empty; will not download the facades release into it")
        for old in dest.parent.glob(".facades-extract-*"):  # left by a killed download (none runs: locked)
            shutil.rmtree(old, ignore_errors=True)
        return _download(dest, url=url, timeout=timeout, log=log)


def _download(dest: Path, *, url: str, timeout: float, log: Callable[[str], None]) -> Path:
    """The body of :func:`download_facades`, run under its lock."""
    archive = dest.parent / "facades.tar.gz.part"
    log(f"downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="facades.tar.gz", leave=False) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        archive.unlink(missing_ok=True)
        raise DataError(
            f"could not download the facades data set from {url} ({e}). Without network access, put the "
            f"pix2pix release (train/ val/ test/ folders of 512x256 A|B jpgs) in {dest}, or pass the CMP Facade "
            "base folder (cmp_b*.png + cmp_b*.jpg) as the data path; set GANKIT_DATA to use another folder "
            f"than {data_root()}"
        ) from e
    tmp = dest.parent / f".facades-extract-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                _safe_extract(tar, tmp)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"the downloaded archive {archive} is damaged ({e}); delete it and retry") from e
        roots = [p.parent for p in tmp.rglob("train") if p.is_dir()]
        if not roots:
            raise DataError(f"the archive from {url} holds no train/ folder")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(roots[0], dest)
        (dest / DOWNLOADED).write_text(url + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive.unlink(missing_ok=True)
    return dest
