"""Dataset downloads against a local HTTP server on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from urbanflow.data import download as dl
from urbanflow.data.download import RemoteDataset, RemoteFile
from urbanflow.errors import DownloadError, UnknownNameError

DATA = b"speed readings " * 5000  # larger than nothing, smaller than one chunk
GRAPH = b"from,to,cost\n1,2,3.5\n"
DATA_SHA = hashlib.sha256(DATA).hexdigest()
GRAPH_SHA = hashlib.sha256(GRAPH).hexdigest()


@dataclass
class Server:
    base: str
    stop: Callable[[], None]
    paths: list[str] = field(default_factory=list)


class _Handler(SimpleHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path.startswith("/truncated/"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA[:100])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    (root / "m1").mkdir(parents=True)
    (root / "m2").mkdir()
    (root / "m1" / "data.h5").write_bytes(DATA)
    (root / "m1" / "graph.csv").write_bytes(GRAPH)
    (root / "m2" / "data.h5").write_bytes(DATA)
    (root / "login.html").write_text("<html>sign in</html>")
    seen: list[str] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=root))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            httpd.shutdown()
            httpd.server_close()
            thread.join()

    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", stop, seen)
    finally:
        stop()


def _catalogue(
    data_urls: tuple[str, ...], graph_urls: tuple[str, ...], data_sha: str | None = DATA_SHA
) -> dict[str, RemoteDataset]:
    files = (RemoteFile("data.h5", data_urls, data_sha), RemoteFile("graph.csv", graph_urls))
    return {"toy": RemoteDataset("toy", "a toy dataset", "nobody, 2024", "public domain", files)}


def _toy(server: Server) -> dict[str, RemoteDataset]:
    return _catalogue((f"{server.base}/m1/data.h5",), (f"{server.base}/m1/graph.csv",))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def _quiet_download(name: str, **kwargs: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dl.download(name, **kwargs)  # type: ignore[arg-type]


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_download_writes_files_and_records_checksums(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match=r"graph\.csv.*cannot be verified"):
        folder = dl.download("toy", cache=cache, catalogue=_toy(server))
    assert folder == cache / "datasets" / "toy"
    assert (folder / "data.h5").read_bytes() == DATA
    assert (folder / "graph.csv").read_bytes() == GRAPH
    recorded = json.loads((folder / dl.CHECKSUMS_FILE).read_text())
    assert recorded == {"data.h5": DATA_SHA, "graph.csv": GRAPH_SHA}
    assert _leftovers(folder) == []
    assert dl.is_downloaded("toy", cache, catalogue=_toy(server))


def test_second_call_downloads_nothing_and_warns_nothing(server: Server, tmp_path: Path) -> None:
    catalogue = _toy(server)
    _quiet_download("toy", cache=tmp_path, catalogue=catalogue)
    server.paths.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dl.download("toy", cache=tmp_path, catalogue=catalogue)
    assert server.paths == []


def test_tampered_file_is_refused(server: Server, tmp_path: Path) -> None:
    folder = _quiet_download("toy", cache=tmp_path, catalogue=_toy(server))
    (folder / "graph.csv").write_bytes(GRAPH + b"2,3,1.0\n")
    with pytest.raises(DownloadError, match="recorded") as info:
        dl.download("toy", cache=tmp_path, catalogue=_toy(server))
    message = str(info.value)
    assert "delete the folder" in message and str(folder) in message
    assert "\n" not in message


def test_published_checksum_mismatch_leaves_no_file(server: Server, tmp_path: Path) -> None:
    catalogue = _catalogue(
        (f"{server.base}/m1/data.h5",), (f"{server.base}/m1/graph.csv",), data_sha="0" * 64
    )
    with pytest.raises(DownloadError, match="published") as info:
        dl.download("toy", cache=tmp_path, catalogue=catalogue)
    folder = tmp_path / "datasets" / "toy"
    assert "data.h5" in str(info.value)
    assert not (folder / "data.h5").exists()
    assert _leftovers(folder) == []


def test_present_file_is_checked_against_the_published_checksum(
    server: Server, tmp_path: Path
) -> None:
    folder = tmp_path / "datasets" / "toy"
    folder.mkdir(parents=True)
    (folder / "data.h5").write_bytes(b"not the data")
    with pytest.raises(DownloadError, match="published"):
        _quiet_download("toy", cache=tmp_path, catalogue=_toy(server))


def test_file_placed_by_hand_is_recorded(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "datasets" / "toy"
    folder.mkdir(parents=True)
    (folder / "graph.csv").write_bytes(GRAPH)
    with pytest.warns(UserWarning, match=r"graph\.csv"):
        dl.download("toy", cache=tmp_path, catalogue=_toy(server))
    assert not any("graph.csv" in path for path in server.paths)
    assert json.loads((folder / dl.CHECKSUMS_FILE).read_text())["graph.csv"] == GRAPH_SHA


def test_first_mirror_missing_then_second_mirror_works(server: Server, tmp_path: Path) -> None:
    catalogue = _catalogue(
        (f"{server.base}/gone/data.h5", f"{server.base}/m2/data.h5"),
        (f"{server.base}/m1/graph.csv",),
    )
    folder = _quiet_download("toy", cache=tmp_path, catalogue=catalogue)
    assert (folder / "data.h5").read_bytes() == DATA
    assert server.paths[:2] == ["/gone/data.h5", "/m2/data.h5"]


def test_web_page_instead_of_file_is_skipped(server: Server, tmp_path: Path) -> None:
    catalogue = _catalogue(
        (f"{server.base}/login.html", f"{server.base}/m1/data.h5"),
        (f"{server.base}/m1/graph.csv",),
        data_sha=None,
    )
    folder = _quiet_download("toy", cache=tmp_path, catalogue=catalogue)
    assert (folder / "data.h5").read_bytes() == DATA


def test_every_mirror_missing_names_the_fix(server: Server, tmp_path: Path) -> None:
    catalogue = _catalogue((f"{server.base}/gone/data.h5",), (f"{server.base}/m1/graph.csv",))
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        dl.download("toy", cache=tmp_path, catalogue=catalogue)
    assert "download data.h5 manually" in str(info.value)


def test_unreachable_server_gives_a_clear_error(tmp_path: Path) -> None:
    port = _unused_port()
    catalogue = _catalogue(
        (f"http://127.0.0.1:{port}/data.h5",), (f"http://127.0.0.1:{port}/graph.csv",)
    )
    with pytest.raises(DownloadError) as info:
        dl.download("toy", cache=tmp_path, catalogue=catalogue)
    message = str(info.value)
    folder = tmp_path / "datasets" / "toy"
    assert message.startswith("toy: could not download data.h5")
    assert "refused" in message.lower()
    assert "check your internet connection" in message.lower()
    assert str(folder) in message and "\n" not in message
    assert sorted(p.name for p in folder.iterdir()) == []
    assert not dl.is_downloaded("toy", tmp_path, catalogue=catalogue)


def test_stopped_server_gives_a_clear_error(server: Server, tmp_path: Path) -> None:
    catalogue = _toy(server)
    _quiet_download("toy", cache=tmp_path / "first", catalogue=catalogue)
    server.stop()
    with pytest.raises(DownloadError, match=r"could not download data\.h5") as info:
        dl.download("toy", cache=tmp_path / "second", catalogue=catalogue)
    assert "check your internet connection" in str(info.value).lower()
    assert list((tmp_path / "second" / "datasets" / "toy").iterdir()) == []


def test_connection_cut_mid_file_leaves_no_partial_file(server: Server, tmp_path: Path) -> None:
    catalogue = _catalogue(
        (f"{server.base}/truncated/data.h5",), (f"{server.base}/m1/graph.csv",), data_sha=None
    )
    with pytest.raises(DownloadError, match=r"could not download data\.h5"):
        dl.download("toy", cache=tmp_path, catalogue=catalogue)
    folder = tmp_path / "datasets" / "toy"
    assert not (folder / "data.h5").exists()
    assert _leftovers(folder) == []


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/data.h5"
        with pytest.raises(DownloadError, match=r"no answer within 0\.2 s"):
            dl.download("toy", cache=tmp_path, timeout=0.2, catalogue=_catalogue((url,), ()))


def test_progress_reports_bytes(server: Server, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int | None]] = []
    _quiet_download(
        "toy",
        cache=tmp_path,
        catalogue=_toy(server),
        progress=lambda name, done, total: calls.append((name, done, total)),
    )
    data_calls = [c for c in calls if c[0] == "data.h5"]
    assert data_calls[0] == ("data.h5", 0, len(DATA))
    assert data_calls[-1] == ("data.h5", len(DATA), len(DATA))


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        dl.download("metr_la", cache=tmp_path)
    assert "metr-la, pems-bay, pems04, pems08" in str(info.value)
    with pytest.raises(UnknownNameError):
        dl.dataset_folder("nope")


def test_cache_dir_follows_the_environment(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("URBANFLOW_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dl.cache_dir() == tmp_path / "home" / ".cache" / "urbanflow"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.cache_dir() == tmp_path / "xdg" / "urbanflow"
    monkeypatch.setenv("URBANFLOW_CACHE", str(tmp_path / "mine"))
    assert dl.cache_dir() == tmp_path / "mine"
    assert dl.dataset_folder("pems04") == tmp_path / "mine" / "datasets" / "pems04"
    folder = _quiet_download("toy", catalogue=_toy(server))
    assert folder == tmp_path / "mine" / "datasets" / "toy"
    assert (folder / "data.h5").is_file()


@pytest.mark.parametrize(
    ("name", "filenames"),
    [
        ("metr-la", {"metr-la.h5", "adj_mx.pkl", "graph_sensor_locations.csv"}),
        ("pems-bay", {"pems-bay.h5", "adj_mx_bay.pkl", "graph_sensor_locations_bay.csv"}),
        ("pems04", {"PEMS04.npz", "PEMS04.csv"}),
        ("pems08", {"PEMS08.npz", "PEMS08.csv"}),
    ],
)
def test_catalogue_lists_the_files_the_readers_need(name: str, filenames: set[str]) -> None:
    dataset = dl.CATALOGUE[name]
    assert dataset.name == name
    assert {f.filename for f in dataset.files} == filenames
    assert dataset.description and dataset.citation and dataset.licence
    for remote in dataset.files:
        assert remote.urls and all(url.startswith("https://") for url in remote.urls)
        assert len(set(remote.urls)) == len(remote.urls)
        if remote.sha256 is not None:
            assert len(remote.sha256) == 64 and int(remote.sha256, 16) >= 0


def test_catalogue_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        dl.CATALOGUE["mine"] = dl.CATALOGUE["pems04"]  # type: ignore[index]
