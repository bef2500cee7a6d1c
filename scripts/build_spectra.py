"""Build `helpers/data/spectra_v1.npz`: the per-material HLS spectra behind the simulated benchmark.

Run: `python scripts/build_spectra.py` (a few seconds). It needs `earthlib` (spectral library, MIT) and `pyrsr`
(spectral response functions, Apache-2.0); the simulator itself only reads the resulting .npz with numpy.

What it does
1. Reads the full earthlib library (7,261 spectra, 400-2450 nm at 10 nm, water-vapour regions 1350-1460 and
   1790-1960 nm absent) through its public `earthlib.full_library` object, which needs no Earth Engine.
2. Reads the real Sentinel-2A MSI and Landsat-8 OLI relative spectral responses shipped by pyrsr (ESA
   S2-SRF_COPE-GSEG-EOPG-TN-15-0007 v3.0; NASA/Ball OLI RSR v1.2) for the bands equivalent to HLS
   B02, B03, B04, B8A, B11, B12, on a common 1-nm grid.
3. Groups library spectra into materials (soils by brightness tercile, litter, wood, char, ash, asphalt, roofs,
   concrete, sand), integrates every spectrum to the six bands (S2A responses; OLI for comparison) and stores each
   material's mean and covariance plus its mean full-resolution spectrum.
4. Summarises the 2,000 PROSAIL canopies by leaf-area index: Gaussian-kernel weighted mean and covariance on an
   LAI grid (the crop phenology of the simulator walks along this grid).
5. Samples the bio-optical water model of `helpers.data.spectral.water_reflectance` for three water types with fixed
   seeds and stores their band means/covariances.

`tests/test_simulate.py` calls `build()` and compares with the committed file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from helpers.data.spectral import SPECTRA_PATH, SPECTRA_VERSION, band_integration_matrix, water_reflectance

S2A_BANDS = ("2", "3", "4", "8A", "11", "12")
L8_BANDS = ("2", "3", "4", "5", "6", "7")
SRF_GRID_NM = np.arange(400.0, 2451.0)
VEG_LAI_GRID = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0])

# earthlib LEVEL_3 types (and JFSP names) per material
_GROUPS: dict[str, dict] = {
    "sand": {"LEVEL_3": ["sand"]},
    "npv_litter": {"LEVEL_3": ["litter"]},
    "npv_wood": {"LEVEL_3": ["bark", "wood", "npv"]},
    "asphalt": {"LEVEL_3": ["asphalt", "road", "parking_lot"]},
    "roof": {"LEVEL_3": ["comp_shingle", "concrete_tile", "tile", "wood_shingle", "metal"]},
    "concrete": {"LEVEL_3": ["sidewalk", "driveway", "bridge"]},
}
_ASH_NAMES = ("ash", "ash_litter", "graysoil")
_NOT_CHAR = (*_ASH_NAMES, "scorch_psme", "difubr")  # scorched needles and an unlabelled fuel sample
# water types: (log-uniform ranges of bbp555 and ag440 in 1/m, eta range, surface term range)
_WATER_TYPES: dict[str, tuple] = {
    "water_clear": ((0.0008, 0.005), (0.03, 0.3), (0.5, 1.5), (0.002, 0.01)),
    "water_turbid": ((0.02, 0.15), (0.2, 1.5), (0.3, 1.2), (0.003, 0.015)),
    "water_humic": ((0.002, 0.02), (1.0, 5.0), (0.5, 1.5), (0.002, 0.01)),
}
ATTRIBUTION = (
    "Land spectra: earthlib 1.1 (MIT licence; C. Anderson, Salo Sciences) full library - ICRAF-ISRIC world soil "
    "spectral library (soils), Santa Barbara urban spectral library (built materials, litter, wood, sand), Joint "
    "Fire Science Program spectral library (char, ash), PROSAIL simulations (vegetation canopies). Spectral "
    "responses: pyrsr 0.8 (Apache-2.0; D. Scheffler, GFZ) - Sentinel-2A MSI (ESA S2-SRF "
    "COPE-GSEG-EOPG-TN-15-0007 v3.0) and Landsat-8 OLI (NASA/Ball RSR v1.2). Water: bio-optical model in "
    # the attribution stored in spectra_v1.npz, kept byte for byte (the module is now helpers/data/spectral.py)
    "helpers/spectral.py with pure-water absorption from the WOPP v3 compilation (Roettgers et al. 2016)."
)


def read_srfs() -> tuple[np.ndarray, np.ndarray]:
    """S2A MSI and L8 OLI responses for the six HLS bands on `SRF_GRID_NM` (each (6, G), peak 1)."""
    from pyrsr import RSR

    out = []
    for sat, sensor, bands in (("Sentinel-2A", "MSI", S2A_BANDS), ("Landsat-8", "OLI_TIRS", L8_BANDS)):
        rsr = RSR(sat, sensor, LayerBandsAssignment=list(bands))
        wl = np.asarray(rsr.rsrs_wvl, dtype=float)
        table = np.zeros((len(bands), SRF_GRID_NM.size))
        for i, b in enumerate(bands):
            table[i] = np.interp(
                SRF_GRID_NM, wl, np.asarray(rsr.rsrs_norm01[b], dtype=float), left=0, right=0
            )
        out.append(table)
    return out[0], out[1]


def read_library() -> tuple[np.ndarray, np.ndarray, object]:
    """earthlib full library: wavelengths (nm), spectra (N, L) reflectance 0-1, metadata DataFrame."""
    import earthlib

    lib = earthlib.full_library
    wl = np.asarray(lib.sensor.band_centers, dtype=float)
    if lib.sensor.wavelength_unit.lower().startswith("micro"):
        wl = wl * 1000.0
    return np.round(wl, 3), np.asarray(lib.data, dtype=float), lib.metadata.reset_index(drop=True)


def _stats(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    w = np.ones(len(x)) if w is None else w
    w = w / w.sum()
    m = w @ x
    d = x - m
    return m, (d * w[:, None]).T @ d


def build() -> dict[str, np.ndarray]:
    """Derive every table of the spectra file (deterministic)."""
    wl, spectra, meta = read_library()
    srf_s2a, srf_l8 = read_srfs()
    m_s2a = band_integration_matrix(wl, SRF_GRID_NM, srf_s2a)
    m_l8 = band_integration_matrix(wl, SRF_GRID_NM, srf_l8)
    hls = spectra @ m_s2a.T
    hls_l8 = spectra @ m_l8.T
    valid = np.isfinite(spectra).all(axis=1) & (hls > 0).all(axis=1) & (hls < 1.5).all(axis=1)

    groups: dict[str, np.ndarray] = {}
    soil = valid & (meta["SOURCE"] == "icraf-isric-soil-database").to_numpy()
    brightness = hls.mean(axis=1)
    t1, t2 = np.quantile(brightness[soil], [1 / 3, 2 / 3])
    groups["soil_dark"] = soil & (brightness <= t1)
    groups["soil_medium"] = soil & (brightness > t1) & (brightness <= t2)
    groups["soil_bright"] = soil & (brightness > t2)
    asd = (meta["SOURCE"] == "asd").to_numpy()
    for name, sel in _GROUPS.items():
        groups[name] = valid & asd & meta["LEVEL_3"].isin(sel["LEVEL_3"]).to_numpy()
    burned = valid & (meta["LEVEL_2"] == "burned").to_numpy()
    groups["char"] = burned & ~meta["NAME"].isin(_NOT_CHAR).to_numpy()
    groups["ash"] = burned & meta["NAME"].isin(_ASH_NAMES).to_numpy()

    names, means, covs, means_l8, counts, full = [], [], [], [], [], []
    for name, sel in groups.items():
        if sel.sum() < 3:
            raise RuntimeError(f"material {name} has only {sel.sum()} library spectra")
        m, c = _stats(hls[sel])
        names.append(name)
        means.append(m)
        covs.append(c)
        means_l8.append(hls_l8[sel].mean(axis=0))
        counts.append(int(sel.sum()))
        full.append(spectra[sel].mean(axis=0))

    # water: sampled from the bio-optical model on the library grid extended to the response functions
    wl_w = np.arange(400.0, 2451.0, 5.0)
    m_w = band_integration_matrix(wl_w, SRF_GRID_NM, srf_s2a)
    m_w8 = band_integration_matrix(wl_w, SRF_GRID_NM, srf_l8)
    for k, (name, (bbp, ag, eta, surf)) in enumerate(_WATER_TYPES.items()):
        rng = np.random.default_rng(1000 + k)
        n = 2000
        bbp555 = np.exp(rng.uniform(np.log(bbp[0]), np.log(bbp[1]), n))
        ag440 = np.exp(rng.uniform(np.log(ag[0]), np.log(ag[1]), n))
        r = water_reflectance(wl_w, bbp555, ag440, rng.uniform(*eta, n), rng.uniform(*surf, n))
        band = r @ m_w.T
        m, c = _stats(band)
        names.append(name)
        means.append(m)
        covs.append(c)
        means_l8.append((r @ m_w8.T).mean(axis=0))
        counts.append(n)
        full.append(np.interp(wl, wl_w, r.mean(axis=0)))

    # vegetation canopies by LAI (PROSAIL)
    veg = valid & (meta["LEVEL_2"] == "vegetation").to_numpy()
    lai = meta["NAME"][veg].str.extract(r"LAI-([0-9.e+]+)-")[0].astype(float).to_numpy()
    veg_mean, veg_cov, veg_neff, veg_full = [], [], [], []
    for node in VEG_LAI_GRID:
        h = 0.15 + 0.1 * node
        w = np.exp(-0.5 * ((lai - node) / h) ** 2)
        m, c = _stats(hls[veg], w)
        veg_mean.append(m)
        veg_cov.append(c)
        veg_neff.append(w.sum() ** 2 / (w**2).sum())
        veg_full.append((w / w.sum()) @ spectra[veg])

    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return {
        "version": np.array(SPECTRA_VERSION),
        "bands": np.array(["B02", "B03", "B04", "B8A", "B11", "B12"]),
        "material_names": np.array(names),
        "mean": f32(means),
        "cov": np.asarray(covs, dtype=np.float64),
        "mean_l8": f32(means_l8),
        "n_spectra": np.array(counts),
        "wavelength_nm": f32(wl),
        "mean_spectrum": f32(full),
        "veg_lai": f32(VEG_LAI_GRID),
        "veg_mean": f32(veg_mean),
        "veg_cov": np.asarray(veg_cov, dtype=np.float64),
        "veg_n_eff": f32(veg_neff),
        "veg_spectrum": f32(veg_full),
        "srf_wavelength_nm": f32(SRF_GRID_NM),
        "srf_s2a": f32(srf_s2a),
        "srf_l8": f32(srf_l8),
        "attribution": np.array(ATTRIBUTION),
    }


def write(tables: dict[str, np.ndarray], path: Path) -> None:
    """Atomically write the tables as a compressed .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **tables)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SPECTRA_PATH)
    args = parser.parse_args()
    tables = build()
    write(tables, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    for n, c, m in zip(tables["material_names"], tables["n_spectra"], tables["mean"], strict=True):
        print(f"  {n:14s} n={c:5d} mean HLS = {np.round(m, 3)}")
    for lai, m, ne in zip(tables["veg_lai"], tables["veg_mean"], tables["veg_n_eff"], strict=True):
        print(f"  veg LAI {lai:4.1f} n_eff={ne:6.1f} mean HLS = {np.round(m, 3)}")


if __name__ == "__main__":
    main()
