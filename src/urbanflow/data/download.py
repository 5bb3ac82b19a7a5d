"""Fetch the public benchmark datasets (METR-LA, PEMS-BAY, PEMS04, PEMS08) into a user cache.

Each dataset is a folder ``<cache>/datasets/<name>/`` holding the files its reader needs and a
``checksums.json`` (``{filename: sha256}``). A file is fetched once, streamed to a temporary
file beside its final name and renamed into place only when complete, so a failed download
never leaves half a file. Mirrors are tried in order.

Most publishers give no checksum. Then the first download's SHA-256 is recorded and checked on
every later call (a warning says that the first download itself could not be verified). Where
a checksum is published (a Git LFS object id), every download and every later call is checked
against it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from urbanflow.errors import DownloadError, UnknownNameError

DownloadProgress = Callable[[str, int, int | None], None]
"""Called as ``progress(filename, bytes_done, bytes_total_or_None)`` while a file streams."""

CHECKSUMS_FILE = "checksums.json"
_CHUNK = 1 << 20
_USER_AGENT = "urbanflow (https://pypi.org/project/urbanflow)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name in the dataset folder and where to fetch it.

    ``urls`` are mirrors of the same bytes, tried in order. ``sha256`` is set only where a
    publisher gives a checksum; ``None`` means the first download's checksum is recorded.

    Parameters
    ----------
    filename
        Its name in the dataset folder.
    urls
        Mirrors of the same bytes, tried in order.
    sha256
        Published SHA-256 (hex), or None (the default).
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None


@dataclass(frozen=True)
class RemoteDataset:
    """A downloadable dataset: what it is, whom to cite, its terms and its files.

    Parameters
    ----------
    name
        The dataset's name (``metr-la``).
    description
        What the readings are, one paragraph.
    citation
        Whom to cite.
    licence
        Terms of use of the files.
    files
        The files its reader needs.
    """

    name: str
    description: str
    citation: str
    licence: str
    files: tuple[RemoteFile, ...]


# Where the URLs come from (read from the publishers' pages and repositories):
# - graph files: the DCRNN authors' repository (README "Graph Construction"), and the chnsh/DCRNN
#   fork; adj_mx_bay.pkl is also in Zenodo record 4263971.
# - metr-la.h5 / pems-bay.h5: the DCRNN authors publish them on Google Drive (README "Data
#   Preparation"); copies are in deepkashiwa20/DL-Traff-Graph, wmmxk/MTGNNData (Git LFS),
#   the Hugging Face datasets jimmygao3218/METRLA and jimmygao3218/PEMSBAY, and Zenodo 4263971.
#   The SHA-256 values are the Git LFS object ids published for these files by
#   wmmxk/MTGNNData (commit 3465e67) and deepkashiwa20/DL-Traff-Graph (commit 5a96370).
# - PEMS04 / PEMS08: the ASTGCN authors' data in guoshnBJTU/ASTGNN (data/PEMS0X), the same files
#   in Davidham3/ASTGCN-2019-mxnet (pems0X.npz, distance.csv) and a Hugging Face copy.
_DCRNN = "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph/"
_DCRNN_FORK = "https://raw.githubusercontent.com/chnsh/DCRNN/master/data/sensor_graph/"
_ZENODO_BAY = "https://zenodo.org/records/4263971/files/"
_GDRIVE = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="
_DL_TRAFF = "deepkashiwa20/DL-Traff-Graph"
_ASTGNN = "https://raw.githubusercontent.com/guoshnBJTU/ASTGNN/main/data/"
_ASTGCN = "https://raw.githubusercontent.com/Davidham3/ASTGCN-2019-mxnet/master/data/"
_HF = "https://huggingface.co/datasets/"

_DCRNN_CITATION = (
    "Li, Yu, Shahabi and Liu. Diffusion Convolutional Recurrent Neural Network: Data-Driven "
    "Traffic Forecasting. ICLR 2018. Files from https://github.com/liyaguang/DCRNN"
)
_ASTGCN_CITATION = (
    "Guo, Lin, Feng, Song and Wan. Attention Based Spatial-Temporal Graph Convolutional "
    "Networks for Traffic Flow Forecasting. AAAI 2019. Files from "
    "https://github.com/guoshnBJTU/ASTGNN; readings from Caltrans PeMS (https://pems.dot.ca.gov)"
)
_NO_DATA_LICENCE = "No licence is stated for the data files; cite the paper when you use them. "


def _pems_files(district: str) -> tuple[RemoteFile, ...]:
    upper, lower = f"PEMS{district}", f"pems{district}"
    return (
        RemoteFile(
            f"{upper}.npz",
            (
                f"{_ASTGNN}{upper}/{upper}.npz",
                f"{_ASTGCN}{upper}/{lower}.npz",
                f"{_HF}pkr7098/time-series-forecasting-datasets/resolve/main/{upper}.npz",
            ),
        ),
        RemoteFile(
            f"{upper}.csv",
            (
                f"{_ASTGNN}{upper}/{upper}.csv",
                f"{_ASTGCN}{upper}/distance.csv",
                f"{_HF}jimmygao3218/{upper}/resolve/main/{upper}.csv",
            ),
        ),
    )


CATALOGUE: Mapping[str, RemoteDataset] = MappingProxyType(
    {
        "metr-la": RemoteDataset(
            name="metr-la",
            description=(
                "Traffic speed (mph) from 207 loop detectors on Los Angeles County highways, "
                "every 5 minutes from 1 March to 27 June 2012 (34,272 steps), with the DCRNN "
                "road-distance adjacency and the sensor coordinates."
            ),
            citation=_DCRNN_CITATION,
            licence=_NO_DATA_LICENCE
            + "Readings from Los Angeles County highway loop detectors (Jagadish et al., 2014); "
            "the DCRNN repository holding the graph files is MIT-licensed.",
            files=(
                RemoteFile(
                    "metr-la.h5",
                    (
                        f"https://raw.githubusercontent.com/{_DL_TRAFF}/HEAD/METRLA/metr-la.h5",
                        "https://github.com/wmmxk/MTGNNData/raw/"
                        "3465e67f63c28bce5ec049172362c33bc061bc37/metr-la.h5",
                        f"{_HF}jimmygao3218/METRLA/resolve/main/metr-la.h5",
                        f"{_GDRIVE}1pAGRfzMx6K9WWsfDcD1NMbIif0T0saFC",
                    ),
                    "64784b76d6fb8ec9bff4b6decafb354da2bb37840468fdccee5044e511277c05",
                ),
                RemoteFile("adj_mx.pkl", (f"{_DCRNN}adj_mx.pkl", f"{_DCRNN_FORK}adj_mx.pkl")),
                RemoteFile("graph_sensor_locations.csv", (f"{_DCRNN}graph_sensor_locations.csv",)),
            ),
        ),
        "pems-bay": RemoteDataset(
            name="pems-bay",
            description=(
                "Traffic speed (mph) from 325 Caltrans PeMS sensors in the San Francisco Bay "
                "Area, every 5 minutes from 1 January to 30 June 2017 (52,116 steps), with the "
                "DCRNN road-distance adjacency and the sensor coordinates."
            ),
            citation=_DCRNN_CITATION,
            licence=_NO_DATA_LICENCE
            + "Readings from Caltrans PeMS, public data of the California Department of "
            "Transportation; the DCRNN repository holding the graph files is MIT-licensed.",
            files=(
                RemoteFile(
                    "pems-bay.h5",
                    (
                        f"https://github.com/{_DL_TRAFF}/raw/"
                        "5a963706298ef24876ea767a31914021ac18306c/PEMSBAY/pems-bay.h5",
                        f"{_HF}jimmygao3218/PEMSBAY/resolve/main/PEMS-BAY.h5",
                        f"{_ZENODO_BAY}pems-bay.h5?download=1",
                        f"{_GDRIVE}1wD-mHlqAb2mtHOe_68fZvDh1LpDegMMq",
                    ),
                    "65d69fb0a2323dba9867179eb7af47c8b814186bc459ff0a4937d21614153c8f",
                ),
                RemoteFile(
                    "adj_mx_bay.pkl",
                    (
                        f"{_DCRNN}adj_mx_bay.pkl",
                        f"{_ZENODO_BAY}adj_mx_bay.pkl?download=1",
                        f"{_DCRNN_FORK}adj_mx_bay.pkl",
                    ),
                ),
                RemoteFile(
                    "graph_sensor_locations_bay.csv", (f"{_DCRNN}graph_sensor_locations_bay.csv",)
                ),
            ),
        ),
        "pems04": RemoteDataset(
            name="pems04",
            description=(
                "Traffic flow, occupancy and speed from 307 Caltrans PeMS detectors in "
                "District 4 (San Francisco Bay Area), every 5 minutes in January and February "
                "2018 (16,992 steps), with road distances between connected detectors."
            ),
            citation=_ASTGCN_CITATION,
            licence=_NO_DATA_LICENCE + "Readings from Caltrans PeMS, public data of the "
            "California Department of Transportation.",
            files=_pems_files("04"),
        ),
        "pems08": RemoteDataset(
            name="pems08",
            description=(
                "Traffic flow, occupancy and speed from 170 Caltrans PeMS detectors in "
                "District 8 (San Bernardino), every 5 minutes in July and August 2016 "
                "(17,856 steps), with road distances between connected detectors."
            ),
            citation=_ASTGCN_CITATION,
            licence=_NO_DATA_LICENCE + "Readings from Caltrans PeMS, public data of the "
            "California Department of Transportation.",
            files=_pems_files("08"),
        ),
    }
)


def cache_dir() -> Path:
    """``$URBANFLOW_CACHE``, else ``$XDG_CACHE_HOME/urbanflow``, else ``~/.cache/urbanflow``."""
    explicit = os.environ.get("URBANFLOW_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "urbanflow"
    return Path.home() / ".cache" / "urbanflow"


def dataset_folder(
    name: str, cache: Path | None = None, *, catalogue: Mapping[str, RemoteDataset] = CATALOGUE
) -> Path:
    """The folder a dataset is (or would be) downloaded to: ``<cache>/datasets/<name>``.

    Parameters
    ----------
    name
        A dataset name of ``catalogue``.
    cache
        Cache root; default :func:`cache_dir`.
    catalogue
        Datasets by name; default the built-in ``CATALOGUE``.
    """
    dataset = _lookup(name, catalogue)
    root = Path(cache) if cache is not None else cache_dir()
    return root / "datasets" / dataset.name


def is_downloaded(
    name: str, cache: Path | None = None, *, catalogue: Mapping[str, RemoteDataset] = CATALOGUE
) -> bool:
    """Whether every file of the dataset is in its folder (without hashing them).

    Parameters
    ----------
    name
        The dataset, as for :func:`dataset_folder`.
    cache
        The cache root, as there.
    catalogue
        The datasets by name, as there.
    """
    dataset = _lookup(name, catalogue)
    folder = dataset_folder(name, cache, catalogue=catalogue)
    return all((folder / remote.filename).is_file() for remote in dataset.files)


def download(
    name: str,
    *,
    cache: Path | None = None,
    progress: DownloadProgress | None = None,
    timeout: float = 30,
    catalogue: Mapping[str, RemoteDataset] = CATALOGUE,
) -> Path:
    """Fetch the files of a dataset that are missing, verify all of them, return the folder.

    Raises :class:`DownloadError` when no mirror of a file can be reached (with the manual
    fix) or when a file does not match its published or recorded checksum, and
    :class:`UnknownNameError` for a name not in ``catalogue``.

    Parameters
    ----------
    name
        Which dataset of ``catalogue``.
    cache
        Root of the dataset folders; default :func:`cache_dir`.
    progress
        Called as ``progress(filename, bytes_done, bytes_total)`` while a file streams;
        default none.
    timeout
        Seconds to wait on a connection or read; default 30.
    catalogue
        Where ``name`` is looked up; default the built-in ``CATALOGUE``.
    """
    dataset = _lookup(name, catalogue)
    folder = dataset_folder(name, cache, catalogue=catalogue)
    _make_folder(folder)
    recorded = _read_checksums(folder)
    unverified: list[str] = []
    for remote in dataset.files:
        path = folder / remote.filename
        if path.is_file():
            digest = _verify_present(dataset.name, remote, path, recorded.get(remote.filename))
        else:
            digest = _fetch(dataset.name, remote, folder, progress, timeout)
        if recorded.get(remote.filename) != digest:
            if remote.sha256 is None:
                unverified.append(remote.filename)
            recorded[remote.filename] = digest
            _write_checksums(folder, recorded)
    if unverified:
        warnings.warn(
            f"{dataset.name}: the source publishes no checksum for {', '.join(unverified)}; "
            f"the SHA-256 of the copy now in the folder is recorded in {folder / CHECKSUMS_FILE} "
            "and checked on every later call, but it cannot be verified against the source",
            UserWarning,
            stacklevel=2,
        )
    return folder


class _MirrorFailed(Exception):
    """One mirror did not give the file; the message says why, in a few words."""


def _lookup(name: str, catalogue: Mapping[str, RemoteDataset]) -> RemoteDataset:
    if name not in catalogue:
        raise UnknownNameError(
            f"no downloadable dataset named {name!r}; valid names: {', '.join(sorted(catalogue))}"
        )
    return catalogue[name]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create the dataset folder {folder}: {exc.strerror or exc}; "
            "set URBANFLOW_CACHE to a folder you can write to"
        ) from exc


def _read_checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DownloadError(
            f"{path} cannot be read ({exc}); delete the folder {folder} and download again"
        ) from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DownloadError(
            f"{path} is not a {{filename: sha256}} object; delete the folder {folder} "
            "and download again"
        )
    return dict(data)


def _write_checksums(folder: Path, checksums: Mapping[str, str]) -> None:
    text = json.dumps(dict(sorted(checksums.items())), indent=2) + "\n"
    handle, temporary = _temporary_file(folder, CHECKSUMS_FILE)
    with handle:
        handle.write(text.encode("utf-8"))
    os.replace(temporary, folder / CHECKSUMS_FILE)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _verify_present(dataset: str, remote: RemoteFile, path: Path, recorded: str | None) -> str:
    """The SHA-256 of a file already in the folder, checked against what is known of it."""
    actual = _sha256_of(path)
    expected, kind = (remote.sha256, "published") if remote.sha256 else (recorded, "recorded")
    if expected is not None and actual != expected:
        raise DownloadError(
            f"{dataset}: {path} has SHA-256 {actual[:12]}…, not the {kind} {expected[:12]}…; "
            f"the file is damaged or was changed: delete the folder {path.parent} "
            f"and download {dataset} again"
        )
    return actual


def _fetch(
    dataset: str,
    remote: RemoteFile,
    folder: Path,
    progress: DownloadProgress | None,
    timeout: float,
) -> str:
    """Download one file from the first mirror that works; return its SHA-256."""
    last = "no mirror is listed"
    for url in remote.urls:
        try:
            return _fetch_from(url, remote, folder, progress, timeout)
        except _MirrorFailed as exc:
            last = str(exc)
    source = f" (e.g. from {remote.urls[0]})" if remote.urls else ""
    raise DownloadError(
        f"{dataset}: could not download {remote.filename} from {len(remote.urls)} mirror(s); "
        f"last error: {last}. Check your internet connection or download {remote.filename} "
        f"manually{source} into {folder}"
    )


def _fetch_from(
    url: str, remote: RemoteFile, folder: Path, progress: DownloadProgress | None, timeout: float
) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    handle, temporary = _temporary_file(folder, remote.filename)
    try:
        with handle:
            digest = _stream(request, handle, remote.filename, progress, timeout)
        if remote.sha256 is not None and digest != remote.sha256:
            raise _MirrorFailed(
                f"{url} gave a file with SHA-256 {digest[:12]}…, "
                f"not the published {remote.sha256[:12]}…"
            )
        os.replace(temporary, folder / remote.filename)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return digest


def _stream(
    request: urllib.request.Request,
    out: BinaryIO,
    filename: str,
    progress: DownloadProgress | None,
    timeout: float,
) -> str:
    """Copy a response into ``out`` chunk by chunk; network failures become _MirrorFailed."""
    url = request.full_url
    digest = hashlib.sha256()
    done, total = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith("text/html") and not filename.endswith(".html"):
                raise _MirrorFailed(f"{url} answered with a web page instead of the file")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress is not None:
                progress(filename, done, total)
            while chunk := response.read(_CHUNK):
                _write(out, chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(filename, done, total)
    except urllib.error.HTTPError as exc:
        raise _MirrorFailed(f"HTTP {exc.code} {exc.reason} from {url}") from exc
    except urllib.error.URLError as exc:
        raise _MirrorFailed(f"{_reason(exc.reason, timeout)} ({url})") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _MirrorFailed(f"{_reason(exc, timeout)} ({url})") from exc
    if total is not None and done != total:
        raise _MirrorFailed(f"{url} closed the connection after {done} of {total} bytes")
    return digest.hexdigest()


def _write(out: BinaryIO, chunk: bytes) -> None:
    """Write to the temporary file; a local failure (disk full) is not a mirror's fault."""
    try:
        out.write(chunk)
    except OSError as exc:
        raise DownloadError(
            f"cannot write {out.name}: {exc.strerror or exc}; free some disk space or set "
            "URBANFLOW_CACHE to another folder"
        ) from exc


def _reason(error: object, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, http.client.IncompleteRead):
        return "the connection closed before the file was complete"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _temporary_file(folder: Path, filename: str) -> tuple[BinaryIO, Path]:
    """A new hidden ``.part`` file beside ``filename``, so the final rename is atomic."""
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller
            dir=folder, prefix=f".{filename}.", suffix=".part", delete=False
        )
    except OSError as exc:
        raise DownloadError(
            f"cannot write in {folder}: {exc.strerror or exc}; set URBANFLOW_CACHE to a "
            "folder you can write to"
        ) from exc
    return handle, Path(handle.name)
