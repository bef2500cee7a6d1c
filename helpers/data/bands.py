"""Band names: what a dataset card may call its bands, and which bands a model or feature needs.

A card (``dataset.json`` of the generic layout, :mod:`helpers.data.generic`) lists its bands by name, so that every
model can find the bands it knows and none silently reads the wrong one. Two vocabularies are accepted:

* **Sentinel-2 / HLS band ids** ``B01``..``B12`` and ``B8A`` (``B1``..``B9`` are read as ``B01``..``B09``). HLS
  names its Landsat (L30) bands after their Sentinel-2 (S30) equivalents, so HLS files use the same ids: its
  narrow NIR is ``B8A`` for both sensors.
* **STAC electro-optical common names** (the ``eo`` extension's ``common_name``: ``coastal``, ``blue``, ``green``,
  ``red``, ``rededge071``/``075``/``078``, ``nir`` (broad, Sentinel-2 B08), ``nir08`` (narrow, B8A / Landsat B5),
  ``nir09``, ``cirrus``, ``swir16``, ``swir22``), stored as the Sentinel-2 id they correspond to; ``yellow``,
  ``pan``, ``rededge``, ``lwir``, ``lwir11``, ``lwir12`` have none and keep their common name.

A name outside both is refused (:class:`~helpers.data.io.DataError`), rather than guessed: a band called ``"nir"``
in one dataset and ``"B8"`` in another must mean the same band here. Broad NIR (``B08``) is not the narrow NIR
(``B8A``) that Prithvi, Galileo and Presto were pretrained on: a model needing ``B8A`` does not take ``B08``.
"""

from __future__ import annotations

from collections.abc import Sequence

from helpers.data.io import DataError

#: The six HLS bands the study's pretrained models and in-study Prithvi-arch rows take, in their channel order.
HLS_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B8A", "B11", "B12")

#: Sentinel-2 MSI band ids.
S2_IDS: tuple[str, ...] = tuple(f"B{i:02d}" for i in range(1, 13)) + ("B8A",)

#: STAC EO common name -> Sentinel-2 id (``None``: no Sentinel-2 equivalent, the common name is kept).
COMMON_NAMES: dict[str, str | None] = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge071": "B05",
    "rededge075": "B06",
    "rededge078": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "yellow": None,
    "pan": None,
    "rededge": None,
    "lwir": None,
    "lwir11": None,
    "lwir12": None,
}

#: Bands that play a role in the study's features and figures, in order of preference.
ROLES: dict[str, tuple[str, ...]] = {
    "blue": ("B02",),
    "green": ("B03",),
    "red": ("B04",),
    "nir": ("B8A", "B08"),  # narrow NIR first: the study's indices are defined on B8A
    "swir22": ("B12",),
}


def canonical(name: str) -> str:
    """The study's name of one band: a Sentinel-2 id, or a common name without one.

    Raises:
        DataError: ``name`` is in neither vocabulary (the message lists what is accepted).
    """
    raw = str(name).strip()
    upper = raw.upper()
    if upper in S2_IDS:
        return upper
    if len(upper) == 2 and upper[0] == "B" and upper[1].isdigit() and upper[1] != "0":
        return f"B0{upper[1]}"
    lower = raw.lower()
    if lower in COMMON_NAMES:
        return COMMON_NAMES[lower] or lower
    raise DataError(
        f"unknown band name {name!r}; use a Sentinel-2/HLS band id ({', '.join(S2_IDS)}) or a STAC common name "
        f"({', '.join(COMMON_NAMES)})"
    )


def canonical_list(names: Sequence[str]) -> list[str]:
    """:func:`canonical` of every name, refusing duplicates (two names for one band)."""
    out = [canonical(n) for n in names]
    seen: dict[str, str] = {}
    for given, c in zip(names, out, strict=True):
        if c in seen:
            raise DataError(f"bands {seen[c]!r} and {given!r} name the same band {c!r}")
        seen[c] = given
    return out


def missing(bands: Sequence[str], needed: Sequence[str] = HLS_BANDS) -> list[str]:
    """The bands of ``needed`` that ``bands`` lacks, in ``needed`` order."""
    have = set(bands)
    return [b for b in needed if b not in have]


def role(bands: Sequence[str], name: str) -> int | None:
    """Index in ``bands`` of the band that plays ``name`` (a key of :data:`ROLES`), or ``None``."""
    for b in ROLES[name]:
        if b in bands:
            return list(bands).index(b)
    return None


def rgb(bands: Sequence[str]) -> tuple[int, int, int]:
    """Channel indices of a true-colour composite: red, green, blue, else the first three bands (false colour)."""
    idx = [role(bands, r) for r in ("red", "green", "blue")]
    if all(i is not None for i in idx):
        return tuple(idx)  # type: ignore[return-value]
    n = len(bands)
    return (0, min(1, n - 1), min(2, n - 1))


def false_colour(bands: Sequence[str]) -> tuple[int, int, int]:
    """NIR, red, green (the classic false-colour composite), else :func:`rgb`."""
    idx = [role(bands, r) for r in ("nir", "red", "green")]
    return tuple(idx) if all(i is not None for i in idx) else rgb(bands)  # type: ignore[return-value]
