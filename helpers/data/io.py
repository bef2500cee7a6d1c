"""GeoTIFF reading with checks that name the file and what was expected.

Every raster the study reads goes through :func:`read_raster`, so a wrong band count, a corrupt file or a label
that does not line up with its image is caught at the door with a message a user can act on, instead of
surfacing later as a shape error deep inside a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.transform
import rioxarray
import xarray as xr


class DataError(ValueError):
    """A data file is missing, unreadable or not what its dataset layout promises."""


def read_raster(path: str | os.PathLike, *, bands: int | None = None) -> xr.DataArray:
    """Open a GeoTIFF as a ``(band, y, x)`` DataArray with CRS and transform kept (via rioxarray).

    The file is read eagerly (chips are small) and unmasked: nodata handling is dataset-specific (Sen1Floods11
    marks it with 0 in S2, burn-scar masks declare -1000 but store -1), so the loaders decide.

    Args:
        path: The file.
        bands: Expected band count; ``None`` skips the check.

    Raises:
        DataError: Missing or unreadable file, or the wrong number of bands.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        da = rioxarray.open_rasterio(path, masked=False, cache=False)
        da = da.load()
    except (rasterio.errors.RasterioError, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read as GeoTIFF ({err})") from err
    if not isinstance(da, xr.DataArray):
        raise DataError(f"{path}: expected a single raster, found subdatasets")
    da.encoding["source"] = str(path)
    if bands is not None and da.sizes["band"] != bands:
        raise DataError(f"{path}: expected {bands} band(s), found {da.sizes['band']}")
    return da


def check_aligned(image: xr.DataArray, label: xr.DataArray, image_path: Path, label_path: Path) -> None:
    """Fail unless image and label share shape and CRS (a misaligned label silently ruins every metric)."""
    if image.sizes["y"] != label.sizes["y"] or image.sizes["x"] != label.sizes["x"]:
        raise DataError(
            f"{label_path}: label shape {label.sizes['y']}x{label.sizes['x']} does not match image "
            f"{image_path} shape {image.sizes['y']}x{image.sizes['x']}"
        )
    ci, cl = image.rio.crs, label.rio.crs
    if ci is not None and cl is not None and ci != cl:
        raise DataError(f"{label_path}: label CRS {cl} does not match image CRS {ci} of {image_path}")


def user_mode(path: str | os.PathLike) -> None:
    """Give a freshly written file the mode the user's umask asks for (e.g. 0644 under umask 022).

    ``tempfile.mkstemp`` creates files 0600 whatever the umask, and a rename keeps that mode: without this, every
    table, figure and checkpoint the study writes through a temporary file would be readable by its owner only, which
    breaks a shared file system (cluster workers, a group's results folder). ``os.umask`` can only be read by setting
    it, so it is set back at once; the study's processes write from one thread each.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a file through a temporary sibling and rename it into place.

    A crash or interrupt mid-write leaves the previous file (or nothing), never a truncated one that a later run
    would mistake for a finished result.

    Args:
        path: Final destination.
        write: Called with the temporary path; must create the file there.

    Returns:
        The final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        user_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of ``path`` (a sibling ``.<name>.lock`` file, ``flock``).

    Atomic renames keep a file whole, but two processes that both read a table, add their rows and rename their
    copy into place lose one writer's rows. Notebooks that run side by side (``python -m helpers.chain``) write the
    same results table, so every update of a shared table happens under this lock. Where ``fcntl`` is missing
    (Windows) it does nothing: run one writer at a time there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    with open(path.parent / f".{path.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_geotiff(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    crs: str | None,
    transform: rasterio.Affine | None,
    nodata: float | None = None,
    tags: dict | None = None,
    band_descriptions: list[str] | None = None,
) -> Path:
    """Write a ``(bands, H, W)`` array as a DEFLATE GeoTIFF, atomically.

    ``crs=None, transform=None`` writes a file without georeferencing, as many public datasets ship their chips
    (the generic layout's example, :func:`helpers.data.generic.write_example`).
    """
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]

    def _write(tmp: Path) -> None:
        profile = {
            "driver": "GTiff",
            "height": data.shape[1],
            "width": data.shape[2],
            "count": data.shape[0],
            "dtype": data.dtype.name,
            "compress": "deflate",
            "predictor": 2
            if data.dtype.kind in "iu"
            else 3,  # horizontal differencing: smaller files, same pixels
            "interleave": "band",
        }
        if crs is not None or transform is not None:
            profile.update(crs=crs, transform=transform)
        if nodata is not None:
            profile["nodata"] = nodata
        with warnings.catch_warnings():
            if crs is None and transform is None:
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            dst = rasterio.open(tmp, "w", **profile)
        with dst:
            dst.write(data)
            if tags:
                dst.update_tags(**tags)
            for i, desc in enumerate(band_descriptions or [], start=1):
                dst.set_band_description(i, desc)

    return atomic_write(path, _write)


def write_grid_tif(
    path: Path,
    data: np.ndarray,
    crs: str,
    origin: tuple[float, float],
    descriptions: list[str],
    nodata,
    tags: dict,
    pixel_size: float,
    simulated: bool = True,
) -> None:
    """A generated chip as a north-up GeoTIFF whose top-left corner is ``origin``: every generator's writer.

    The ``SIMULATED`` tag says whether the pixels are simulated (``yes``) or real ones re-gridded (Indian Pines:
    ``no``), so a file read out of context still says what it is.
    """
    write_geotiff(
        path,
        data,
        crs=crs,
        transform=rasterio.transform.from_origin(origin[0], origin[1], pixel_size, pixel_size),
        nodata=nodata,
        tags={"SIMULATED": "yes" if simulated else "no", **tags},
        band_descriptions=descriptions,
    )


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`), with the user's umask."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks (pretrained weights run to hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(root: Path, key: dict) -> None:
    """``root/manifest.json``: the generation key and every file's size and sha256 (what the cache check reads)."""
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            rel = p.relative_to(root).as_posix()
            files[rel] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    write_text(root / "manifest.json", json.dumps({**key, "files": files}, indent=2, sort_keys=True) + "\n")
