"""Security of the web face without a browser: loopback detection, the token (and its aiohttp
middleware), and the data folder's confinement of paths and uploads (traversal, symlinks, size, type)."""
from __future__ import annotations

import asyncio
import os

import pytest

from SurgicalAICore.errors import InputError

pytest.importorskip("aiohttp")
from surgicalai.web.security import DataRoot, is_loopback, new_token, sniff_type, token_matches

NII_GZ = b"\x1f\x8b\x08\x00" + b"\x00" * 60


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.nii.gz").write_bytes(NII_GZ)
    (tmp_path / "data" / "case.nii.gz").write_bytes(NII_GZ)
    return DataRoot.of(tmp_path / "data", max_upload_bytes=1000)


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_loopback_hosts():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.10", "::", "example.org"))


def test_token_comparison():
    token = new_token()
    assert len(token) >= 24 and token != new_token()
    assert token_matches(token, token)
    assert not token_matches(None, token) and not token_matches("", token) and not token_matches(token + "x", token)
    assert token_matches(None, None)  # loopback: no token needed


def test_paths_are_confined(root, tmp_path):
    assert root.resolve("case.nii.gz") == (tmp_path / "data" / "case.nii.gz").resolve()
    for bad in ("../outside/secret.nii.gz", "/etc/passwd", "a/../../outside", "..\\outside\\secret.nii.gz",
                str(tmp_path / "outside" / "secret.nii.gz")):
        with pytest.raises(InputError, match="outside the data folder"):
            root.resolve(bad)
    with pytest.raises(InputError, match="does not exist"):
        root.resolve("missing.nii.gz")


def test_symlinks_leading_outside_are_refused(root, tmp_path):
    os.symlink(tmp_path / "outside", root.root / "link_dir")
    os.symlink(tmp_path / "outside" / "secret.nii.gz", root.root / "link.nii.gz")
    os.symlink(root.root / "case.nii.gz", root.root / "inside.nii.gz")
    for bad in ("link_dir/secret.nii.gz", "link.nii.gz"):
        with pytest.raises(InputError, match="leads outside"):
            root.resolve(bad)
    assert root.resolve("inside.nii.gz").name == "case.nii.gz"
    listed = {e["path"] for e in root.listing()}
    assert "inside.nii.gz" in listed and "case.nii.gz" in listed
    assert not any("secret" in p or p == "link.nii.gz" for p in listed)
    with pytest.raises(InputError, match="leads outside"):
        root.write_upload("x.nii.gz", NII_GZ, folder="link_dir")
    assert files_under(tmp_path / "outside") == ["secret.nii.gz"]


def test_uploads_are_checked_before_anything_is_written(root):
    before = files_under(root.root)
    refusals = {"../evil.nii.gz": "plain file name", "a/b.nii.gz": "plain file name", "..": "plain file name",
                ".hidden.nii.gz": "plain file name", "x.exe": "is not one of", "": "no name"}
    for name, why in refusals.items():
        with pytest.raises(InputError, match=why):
            root.write_upload(name, NII_GZ)
    with pytest.raises(InputError, match=r"is 1064 bytes, over the 1000 bytes limit"):
        root.write_upload("big.nii.gz", NII_GZ + b"\x00" * 1000)
    with pytest.raises(InputError, match=r"does not contain \.nrrd data"):
        root.write_upload("renamed.nrrd", NII_GZ)
    assert files_under(root.root) == before


def test_an_accepted_upload_lands_in_uploads_under_a_new_name(root):
    first = root.write_upload("case.nii.gz", NII_GZ)
    second = root.write_upload("case.nii.gz", NII_GZ)
    assert first.parent == second.parent == root.root / "uploads"
    assert (first.name, second.name) == ("case.nii.gz", "case-1.nii.gz")
    assert files_under(root.root / "uploads") == ["case-1.nii.gz", "case.nii.gz"]  # no temp files left


def test_types_are_sniffed():
    assert sniff_type(b"NRRD0004\n", ".nrrd") and not sniff_type(b"P5\n", ".nrrd")
    nii = bytearray(348)
    nii[344:348] = b"n+1\x00"
    assert sniff_type(bytes(nii), ".nii") and not sniff_type(bytes(348), ".nii")
    assert sniff_type(b"\x00\x00\x00\x1cftypisom", ".mp4") and sniff_type(b"\x89PNG\r\n\x1a\n", ".png")


def test_token_middleware_guards_every_route(tmp_path):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from surgicalai.web.server_hooks import token_middleware

    async def scenario():
        app = web.Application(middlewares=[token_middleware("s3cret-token-value")])
        page = tmp_path / "index.html"
        page.write_text("page")
        app.router.add_get("/index.html", lambda _r: web.FileResponse(page))  # as wslink serves the page
        async with TestClient(TestServer(app)) as client:
            refused = await client.get("/index.html")
            wrong = await client.get("/index.html?token=nope")
            allowed = await client.get("/index.html?token=s3cret-token-value")
            later = await client.get("/index.html")  # the cookie set above
            return refused.status, await refused.text(), wrong.status, allowed.status, later.status

    refused, text, wrong, allowed, later = asyncio.run(scenario())
    assert (refused, wrong, allowed, later) == (403, 403, 200, 200)
    assert "access token is required" in text


def test_upload_payloads_from_the_page_are_normalised():
    from surgicalai.web.panel_case import upload_parts

    assert upload_parts({"name": "a.nii.gz", "content": [31, 139]}) == ("a.nii.gz", b"\x1f\x8b")
    assert upload_parts({"name": "a.nii.gz", "content": [b"\x1f", b"\x8b"]}) == ("a.nii.gz", b"\x1f\x8b")
    assert upload_parts({"name": "a.nii.gz", "content": b"\x1f\x8b"}) == ("a.nii.gz", b"\x1f\x8b")
    for bad in (None, "x", {"name": "a"}, {"name": "a", "content": [300]}, {"name": "a", "content": "text"}):
        with pytest.raises(InputError, match="Upload refused"):
            upload_parts(bad)


def test_cli_refuses_a_missing_data_folder_and_a_bad_port(tmp_path, capsys):
    from surgicalai.cli import main

    assert main(["web", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["web", "--data", str(tmp_path), "--port", "70000"]) == 2
    assert "between 1 and 65535" in capsys.readouterr().err
