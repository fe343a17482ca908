#!/usr/bin/env python3
"""Unit tests of scripts/release.py: the manifest cannot lie, the versions must agree,
archives are reproducible. Run by `make release-test` (`make dist-check` and .ci/run)."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import release  # noqa: E402

REAL = release.ROOT


class Project:
    """A throw-away project root: Cargo.toml, CHANGELOG.md, LICENSE, helper, template."""

    def __init__(self, tmp: Path, version="1.2.3", changelog="## 1.2.3 (2025-01-02)\n\n- first\n"):
        self.root = tmp / "project"
        self.root.mkdir()
        self.set_version(version)
        (self.root / "CHANGELOG.md").write_text("# Changelog\n\n" + changelog + "\n## 1.0.0\n\n- old\n")
        (self.root / "LICENSE").write_text("license text\n")
        (self.root / release.HELPER).write_text("#!/bin/sh\n")
        shutil.copy(REAL / "krew-manifest.yaml", self.root / "krew-manifest.yaml")
        self.docs = tmp / "docs"
        (self.docs / "man" / "man1").mkdir(parents=True)
        (self.docs / "man" / "man1" / "kubectl-mpo.1").write_text(".TH kubectl-mpo 1\n")
        (self.docs / "completions").mkdir()
        for name in release.SHELLS.values():
            (self.docs / "completions" / name).write_text(f"# {name}\n")
        self.binary = tmp / "kubectl-mpo-bin"
        self.binary.write_bytes(b"\x7fELF fake binary")
        self.dist = tmp / "dist"

    def set_version(self, version: str) -> None:
        (self.root / "Cargo.toml").write_text(
            f'[package]\nname = "kubectl-mpo"\nversion = "{version}"\n'
            'repository = "https://example.test/org/kubectl-mpo"\n'
        )

    def package(self, os_name="linux", arch="amd64", version="1.2.3", epoch=1_700_000_000) -> Path:
        return release.package(self.binary, os_name, arch, self.docs, self.dist, version, epoch, root=self.root)

    def package_all(self, version="1.2.3") -> None:
        for os_name, arch in release.PLATFORMS:
            self.package(os_name, arch, version)


class ReleaseTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.p = Project(self.tmp)
        self.logged: list[str] = []

    def render(self, **kwargs):
        return release.render(self.p.dist, root=self.p.root, log=self.logged.append, **kwargs)

    # --- versions ---------------------------------------------------------------

    def test_versions_agree(self):
        self.assertEqual(release.check_version(self.p.root, "v1.2.3"), "1.2.3")

    def test_mismatched_tag_is_refused(self):
        with self.assertRaisesRegex(release.Refused, r"tag v1\.2\.4 is not v1\.2\.3"):
            release.check_version(self.p.root, "v1.2.4")
        self.p.package_all()
        with self.assertRaisesRegex(release.Refused, "tag v9.9.9"):
            self.render(tag="v9.9.9")
        self.assertFalse((self.p.dist / "mpo.yaml").exists())

    def test_cargo_and_changelog_must_agree(self):
        self.p.set_version("1.2.4")
        with self.assertRaisesRegex(release.Refused, "Cargo.toml says 1.2.4 but the top CHANGELOG.md entry is 1.2.3"):
            release.check_version(self.p.root)

    def test_unreleased_entry_cannot_be_tagged(self):
        (self.p.root / "CHANGELOG.md").write_text("# Changelog\n\n## 1.2.3 (unreleased)\n\n- wip\n")
        self.assertEqual(release.check_version(self.p.root), "1.2.3")
        with self.assertRaisesRegex(release.Refused, "unreleased"):
            release.check_version(self.p.root, "v1.2.3")

    def test_release_notes_are_the_top_entry(self):
        version, rest, body = release.changelog_top(self.p.root)
        self.assertEqual((version, rest, body), ("1.2.3", "(2025-01-02)", "- first\n"))

    # --- the manifest -----------------------------------------------------------

    def test_release_manifest_covers_six_platforms(self):
        self.p.package_all()
        manifest = self.render(tag="v1.2.3").read_text()
        platforms = release.manifest_platforms(manifest)
        self.assertEqual(len(platforms), 6)
        for (uri, sha), (os_name, arch) in zip(platforms, release.PLATFORMS):
            name = release.archive_name("1.2.3", os_name, arch)
            self.assertEqual(uri, f"https://example.test/org/kubectl-mpo/releases/download/v1.2.3/{name}")
            self.assertEqual(sha, release.sha256_of(self.p.dist / name))
        self.assertIn("homepage: https://example.test/org/kubectl-mpo\n", manifest)
        self.assertIn("version: v1.2.3\n", manifest)
        self.assertIn("bin: kubectl-mpo.exe\n", manifest)
        self.assertNotIn("{{", manifest)
        self.assertEqual(len((self.p.dist / "checksums.txt").read_text().splitlines()), 6)
        self.assertEqual(release.verify(self.p.dist), 6)

    def test_missing_platform_is_an_error_for_a_release(self):
        self.p.package_all()
        (self.p.dist / release.archive_name("1.2.3", "darwin", "arm64")).unlink()
        with self.assertRaisesRegex(release.Refused, "no archive for darwin/arm64"):
            self.render(tag="v1.2.3")

    def test_missing_platform_is_left_out_of_a_local_manifest_with_a_line(self):
        self.p.package("linux", "amd64")
        manifest = self.render(local=True).read_text()
        self.assertEqual(len(release.manifest_platforms(manifest)), 1)
        self.assertEqual(len(self.logged), 5)
        self.assertTrue(all(line.startswith("left out ") for line in self.logged), self.logged)
        self.assertNotIn("0" * 64, manifest)

    def test_zero_checksum_is_refused(self):
        self.p.package_all()
        manifest = self.render(tag="v1.2.3")
        text = manifest.read_text()
        sha = release.manifest_platforms(text)[2][1]
        manifest.write_text(text.replace(sha, "0" * 64))
        with self.assertRaisesRegex(release.Refused, "placeholder"):
            release.verify(self.p.dist)
        manifest.write_text(text.replace(sha, "''"))
        with self.assertRaisesRegex(release.Refused, "placeholder"):
            release.verify(self.p.dist)

    def test_checksum_of_another_archive_is_refused(self):
        self.p.package_all()
        self.render(tag="v1.2.3")
        # The archive changes after the manifest was rendered.
        self.p.binary.write_bytes(b"another build")
        self.p.package("windows", "arm64")
        with self.assertRaisesRegex(release.Refused, "windows_arm64.tar.gz is [0-9a-f]{64}, the archive's is"):
            release.verify(self.p.dist)

    def test_checksums_txt_must_cover_every_archive(self):
        self.p.package("linux", "amd64")
        self.render(local=True)
        self.p.package("linux", "arm64")
        with self.assertRaisesRegex(release.Refused, "does not cover .*linux_arm64"):
            release.verify(self.p.dist)

    def test_archive_with_a_wrong_layout_is_refused(self):
        path = self.p.package("linux", "amd64")
        with tarfile.open(path, "w:gz") as tar:
            tar.add(self.p.binary, arcname="kubectl-mpo")
        with self.assertRaisesRegex(release.Refused, "expected"):
            self.render(local=True)

    def test_version_override_is_local_only(self):
        self.p.package_all("1.2.4")
        with self.assertRaisesRegex(release.Refused, "local test manifests only"):
            self.render(tag="v1.2.3", version="1.2.4")
        manifest = self.render(local=True, version="1.2.4", base_url="http://127.0.0.1:1/").read_text()
        self.assertIn("uri: http://127.0.0.1:1/kubectl-mpo_1.2.4_linux_amd64.tar.gz\n", manifest)

    def test_short_description_fits_krew_index(self):
        text = (self.p.root / "krew-manifest.yaml").read_text()
        (self.p.root / "krew-manifest.yaml").write_text(
            text.replace("shortDescription: Manage", "shortDescription: " + "x" * 50 + " Manage")
        )
        self.p.package("linux", "amd64")
        with self.assertRaisesRegex(release.Refused, "shortDescription"):
            self.render(local=True)

    # --- archives ---------------------------------------------------------------

    def test_archives_are_reproducible(self):
        first = self.p.package().read_bytes()
        # Other file times, another umask: the same bytes.
        later = time.time() + 1000
        for path in [self.p.binary, *self.p.docs.rglob("*")]:
            os.utime(path, (later, later))
        old = os.umask(0o077)
        try:
            second = self.p.package().read_bytes()
        finally:
            os.umask(old)
        self.assertEqual(first, second)
        self.assertEqual(first[4:8], b"\0\0\0\0", "gzip header time is 0")
        with tarfile.open(self.p.dist / release.archive_name("1.2.3", "linux", "amd64")) as tar:
            members = tar.getmembers()
        self.assertEqual([m.name for m in members], sorted(m.name for m in members))
        self.assertTrue(all(m.uid == 0 and m.gid == 0 and m.mtime == 1_700_000_000 for m in members))
        self.assertIn("man/man1/kubectl-mpo.1", [m.name for m in members])

    def test_same_layout_on_every_platform(self):
        self.p.package_all()
        layouts = set()
        for os_name, arch in release.PLATFORMS:
            with tarfile.open(self.p.dist / release.archive_name("1.2.3", os_name, arch)) as tar:
                layouts.add(tuple(n.replace(".exe", "") for n in sorted(tar.getnames())))
        self.assertEqual(len(layouts), 1, layouts)


if __name__ == "__main__":
    unittest.main()
