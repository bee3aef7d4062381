"""Finding and fetching the cascade: local copy, environment override, pinned download."""

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from animerec import CascadeError, load_detector
from animerec import cascade as cascade_module
from animerec.cascade import CASCADE_SHA256, cascade_path, fetch_cascade
from animerec.paths import DEFAULT_CASCADE


@pytest.fixture(scope="module")
def cascade_bytes():
    data = DEFAULT_CASCADE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == CASCADE_SHA256, "cascades/ holds an unexpected file"
    return data


@pytest.fixture()
def loopback_server(cascade_bytes):
    """Serve /right.xml (the real cascade) and /wrong.xml (something else) on 127.0.0.1."""
    files = {"/right.xml": cascade_bytes, "/wrong.xml": b"<opencv_storage></opencv_storage>"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_with_the_right_checksum_is_saved(loopback_server, tmp_path):
    target = tmp_path / "sub" / "cascade.xml"
    fetch_cascade(f"{loopback_server}/right.xml", target)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == CASCADE_SHA256
    assert load_detector(target) is not None


def test_download_with_a_wrong_checksum_is_refused_and_leaves_nothing(loopback_server, tmp_path):
    target = tmp_path / "cascade.xml"
    with pytest.raises(CascadeError, match="SHA-256"):
        fetch_cascade(f"{loopback_server}/wrong.xml", target)
    assert list(tmp_path.iterdir()) == []


def test_offline_gives_a_sentence_saying_where_to_put_the_file(tmp_path):
    with pytest.raises(CascadeError, match="put it at") as caught:
        fetch_cascade("http://127.0.0.1:9/lbpcascade_animeface.xml", tmp_path / "c.xml", timeout=5)
    assert "ANIMEREC_CASCADE" in str(caught.value)


def test_missing_default_is_downloaded_from_the_overriding_address(loopback_server, tmp_path, monkeypatch):
    target = tmp_path / "cascades" / "lbpcascade_animeface.xml"
    monkeypatch.setattr(cascade_module, "DEFAULT_CASCADE", target)
    monkeypatch.delenv("ANIMEREC_CASCADE", raising=False)
    monkeypatch.setenv("ANIMEREC_CASCADE_URL", f"{loopback_server}/right.xml")
    assert cascade_path() == target and target.is_file()


def test_environment_variable_names_the_file(tmp_path, monkeypatch, cascade_bytes):
    chosen = tmp_path / "mine.xml"
    chosen.write_bytes(cascade_bytes)
    monkeypatch.setenv("ANIMEREC_CASCADE", str(chosen))
    assert cascade_path() == chosen


def test_environment_variable_naming_nothing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMEREC_CASCADE", str(tmp_path / "absent.xml"))
    with pytest.raises(CascadeError, match="not a file"):
        cascade_path()


@pytest.mark.parametrize("content", [b"", b"not xml at all", b"<opencv_storage></opencv_storage>"])
def test_a_bad_cascade_file_is_refused(tmp_path, content):
    bad = tmp_path / "bad.xml"
    bad.write_bytes(content)
    with pytest.raises(CascadeError, match="not a readable OpenCV cascade"):
        load_detector(bad)


def test_the_cascade_is_found_from_the_package_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANIMEREC_CASCADE", raising=False)
    assert cascade_path() == DEFAULT_CASCADE
    assert Path(DEFAULT_CASCADE).is_absolute()
