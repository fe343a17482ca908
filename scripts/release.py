#!/usr/bin/env python3
"""Release archives, the krew manifest and the version checks, from one source.

Cargo.toml's `version` and `repository` are the only source of the version and the
home: archive names, download URLs, the manifest's homepage. Subcommands:

  meta [FIELD]          print version / repository (FIELD alone: just its value)
  check-version [--tag vX.Y.Z]
                        Cargo.toml, the top CHANGELOG.md entry (and the tag) agree; with
                        --tag the entry must not be "(unreleased)"
  notes                 the top CHANGELOG.md entry's text (the release notes)
  docs --binary BIN DIR man pages (`BIN __man`) and completion scripts (`BIN completion
                        SHELL`) into DIR/man/man1 and DIR/completions
  package --binary BIN --platform OS/ARCH --docs DIR --out DIST
                        a reproducible kubectl-mpo_<version>_<os>_<arch>.tar.gz: sorted
                        entries, owner 0/0, every mtime SOURCE_DATE_EPOCH (else the commit
                        time), gzip without name or time
  render --dist DIST [--tag vX.Y.Z | --local] [--base-url URL]
                        DIST/mpo.yaml and DIST/checksums.txt from the archives in DIST:
                        each checksum computed here from the archive's bytes, each
                        archive's layout checked; a platform without an archive is an
                        error (--local: left out, with a line saying so)
  verify --dist DIST    every checksum in DIST/mpo.yaml and DIST/checksums.txt is a real
                        sha256 that matches its archive

Exits 1 with one `error:` line on a refusal. Tests: scripts/test_release.py.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "kubectl-mpo"
HELPER = "kubectl_complete-mpo"
PLUGIN = "mpo"
# krew-index's convention for shortDescription (`kubectl krew search` column).
SHORT_DESCRIPTION_MAX = 50
PLATFORMS = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "amd64"),
    ("windows", "arm64"),
]
SHELLS = {
    "bash": "kubectl-mpo.bash",
    "zsh": "_kubectl-mpo",
    "fish": "kubectl-mpo.fish",
    "powershell": "kubectl-mpo.ps1",
}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Refused(Exception):
    """A release step that must not go on; the message says what and why."""


# --- the one source: Cargo.toml and CHANGELOG.md --------------------------------------


def cargo_meta(root: Path = ROOT) -> dict[str, str]:
    package = tomllib.loads((root / "Cargo.toml").read_text())["package"]
    for field in ("version", "repository"):
        if not isinstance(package.get(field), str) or not package[field]:
            raise Refused(f"Cargo.toml [package] has no {field}")
    return {
        "version": package["version"],
        "repository": package["repository"].rstrip("/"),
    }


def changelog_top(root: Path = ROOT) -> tuple[str, str, str]:
    """(version, heading remainder, body) of the first `## X.Y.Z ...` entry."""
    text = (root / "CHANGELOG.md").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^## \[?v?(\d+\.\d+\.\d+[^\]\s]*)\]?\s*(.*)$", line)
        if match:
            body = []
            for rest in lines[i + 1 :]:
                if rest.startswith("## "):
                    break
                body.append(rest)
            return match.group(1), match.group(2).strip(), "\n".join(body).strip() + "\n"
        if line.startswith("## "):
            raise Refused(f"CHANGELOG.md: the top entry {line!r} does not start with a version")
    raise Refused("CHANGELOG.md has no `## X.Y.Z` entry")


def check_version(root: Path = ROOT, tag: str | None = None) -> str:
    """The version all sources agree on; refuses when they disagree."""
    version = cargo_meta(root)["version"]
    top, rest, _ = changelog_top(root)
    if top != version:
        raise Refused(
            f"Cargo.toml says {version} but the top CHANGELOG.md entry is {top}: "
            "add the entry for this version first"
        )
    if tag is not None:
        if tag != f"v{version}":
            raise Refused(
                f"the tag {tag} is not v{version}, the version in Cargo.toml and CHANGELOG.md"
            )
        if "unreleased" in rest.lower():
            raise Refused(
                f"the CHANGELOG.md entry for {version} is still marked {rest!r}: "
                "give it the release date before tagging"
            )
    return version


# --- archives ---------------------------------------------------------------------


def source_epoch(root: Path = ROOT) -> int:
    """SOURCE_DATE_EPOCH, else the time of the commit checked out."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").strip():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%ct"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        raise Refused("no SOURCE_DATE_EPOCH and no git commit to take the archive time from") from err


def archive_name(version: str, os_name: str, arch: str) -> str:
    return f"{NAME}_{version}_{os_name}_{arch}.tar.gz"


def binary_name(os_name: str) -> str:
    return f"{NAME}.exe" if os_name == "windows" else NAME


def expected_layout(os_name: str, man_pages: list[str]) -> list[str]:
    """The files every archive holds (the same on every platform but the .exe)."""
    files = [binary_name(os_name), HELPER, "LICENSE"]
    files += [f"completions/{name}" for name in SHELLS.values()]
    files += [f"man/man1/{name}" for name in man_pages]
    return sorted(files)


def make_docs(binary: Path, out: Path) -> None:
    """Man pages and completion scripts, written by the binary itself."""
    (out / "man" / "man1").mkdir(parents=True, exist_ok=True)
    (out / "completions").mkdir(parents=True, exist_ok=True)
    subprocess.run([str(binary), "__man", str(out / "man" / "man1")], check=True, stdout=subprocess.DEVNULL)
    for shell, name in SHELLS.items():
        script = subprocess.run([str(binary), "completion", shell], check=True, capture_output=True).stdout
        if not script:
            raise Refused(f"`{binary} completion {shell}` printed nothing")
        (out / "completions" / name).write_bytes(script)


def deterministic_targz(path: Path, entries: dict[str, tuple[bytes, int]], epoch: int) -> None:
    """entries: archive name -> (bytes, mode). Directories are added for every parent."""
    dirs = {str(Path(name).parent) for name in entries} - {"."}
    for d in list(dirs):
        parts = Path(d).parts
        dirs.update(str(Path(*parts[:i])) for i in range(1, len(parts)))
    members: list[tuple[str, bytes | None, int]] = [(d, None, 0o755) for d in dirs]
    members += [(name, data, mode) for name, (data, mode) in entries.items()]
    members.sort(key=lambda m: m[0])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name + ("/" if data is None else ""))
            info.mtime = epoch
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        # As `gzip -n`: no file name, time 0 in the gzip header.
        with gzip.GzipFile(filename="", mode="wb", fileobj=file, compresslevel=9, mtime=0) as gz:
            gz.write(raw.getvalue())
    tmp.replace(path)


def package(
    binary: Path,
    os_name: str,
    arch: str,
    docs: Path,
    out: Path,
    version: str,
    epoch: int,
    root: Path = ROOT,
) -> Path:
    if (os_name, arch) not in PLATFORMS:
        raise Refused(f"unknown platform {os_name}/{arch}")
    entries: dict[str, tuple[bytes, int]] = {
        binary_name(os_name): (binary.read_bytes(), 0o755),
        HELPER: ((root / HELPER).read_bytes(), 0o755),
        "LICENSE": ((root / "LICENSE").read_bytes(), 0o644),
    }
    for sub in ("man/man1", "completions"):
        found = sorted(p for p in (docs / sub).iterdir() if p.is_file()) if (docs / sub).is_dir() else []
        if not found:
            raise Refused(f"{docs / sub} is empty: run `release.py docs` first")
        for p in found:
            entries[f"{sub}/{p.name}"] = (p.read_bytes(), 0o644)
    missing = [f"completions/{n}" for n in SHELLS.values() if f"completions/{n}" not in entries]
    if missing:
        raise Refused(f"{docs} lacks {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / archive_name(version, os_name, arch)
    deterministic_targz(path, entries, epoch)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_layout(path: Path, os_name: str) -> None:
    """The archive holds what the manifest installs, at the top level, nothing else."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise Refused(f"{path.name} is not a readable tar.gz: {err}") from err
    files = sorted(m.name for m in members if m.isfile())
    pages = [Path(f).name for f in files if f.startswith("man/man1/")]
    expected = expected_layout(os_name, pages)
    if files != expected or not pages:
        raise Refused(f"{path.name} holds {files}, expected {expected} (at least one man page)")
    binary = next(m for m in members if m.name == binary_name(os_name))
    if os_name != "windows" and not binary.mode & 0o111:
        raise Refused(f"{path.name}: {binary.name} is not executable")


# --- the krew manifest ------------------------------------------------------------


def platform_block(os_name: str, arch: str, uri: str, sha: str) -> str:
    files = [binary_name(os_name), HELPER, "LICENSE", "man", "completions"]
    return (
        f"  - selector:\n      matchLabels:\n        os: {os_name}\n        arch: {arch}\n"
        f"    uri: {uri}\n    sha256: \"{sha}\"\n    bin: {binary_name(os_name)}\n    files:\n"
        + "".join(f"      - from: {name}\n        to: .\n" for name in files)
    )


def render(
    dist: Path,
    *,
    tag: str | None = None,
    local: bool = False,
    base_url: str | None = None,
    version: str | None = None,
    require_all: bool = False,
    root: Path = ROOT,
    log=lambda text: print(text, file=sys.stderr),
) -> Path:
    """dist/mpo.yaml and dist/checksums.txt from the archives in dist.

    version replaces Cargo.toml's only for `make dist-check`'s next-version test
    (with --local, never with a tag).
    """
    if tag is not None and local:
        raise Refused("--tag renders a release manifest: it cannot be --local")
    if require_all and not local:
        raise Refused("--require-all is for --local manifests (a release always requires all)")
    if tag is None and not local:
        raise Refused("a release manifest needs the tag it is for (--tag vX.Y.Z), or --local")
    meta = cargo_meta(root)
    if version is None:
        version = check_version(root, tag)
    elif tag is not None:
        raise Refused("a version override is for local test manifests only")
    base = (base_url or f"{meta['repository']}/releases/download/v{version}").rstrip("/")
    blocks, sums = [], []
    for os_name, arch in PLATFORMS:
        name = archive_name(version, os_name, arch)
        path = dist / name
        if not path.is_file():
            if local and not require_all:
                log(f"left out {os_name}/{arch}: no {path} (a local build has only its own platform)")
                continue
            raise Refused(f"no archive for {os_name}/{arch}: {path} is missing; a release covers every platform")
        check_layout(path, os_name)
        sha = sha256_of(path)
        blocks.append(platform_block(os_name, arch, f"{base}/{name}", sha))
        sums.append(f"{sha}  {name}\n")
    if not blocks:
        raise Refused(f"no archive for version {version} in {dist}")
    template = (root / "krew-manifest.yaml").read_text()
    short = re.search(r"^  shortDescription: (.*)$", template, re.M)
    if not short or not (0 < len(short.group(1)) < SHORT_DESCRIPTION_MAX):
        raise Refused(f"krew-manifest.yaml: shortDescription must be 1-{SHORT_DESCRIPTION_MAX - 1} characters")
    text = (
        template.replace("{{VERSION}}", version)
        .replace("{{HOMEPAGE}}", meta["repository"])
        .replace("{{PLATFORMS}}\n", "".join(blocks))
    )
    if template.count("{{PLATFORMS}}") != 1:
        raise Refused("krew-manifest.yaml must hold {{PLATFORMS}} once, on a line of its own")
    if "{{" in text:
        raise Refused(f"krew-manifest.yaml: a placeholder is left: {re.search(r'{{[^}]*}}', text).group(0)}")
    (dist / "checksums.txt").write_text("".join(sums))
    manifest = dist / f"{PLUGIN}.yaml"
    manifest.write_text(text)
    verify(dist, manifest)
    return manifest


def manifest_platforms(text: str) -> list[tuple[str, str]]:
    """(uri, sha256) of each platform, in order (the manifest is ours: one key a line)."""
    uris, shas = [], []
    for line in text.splitlines():
        if match := re.fullmatch(r" +uri: *(\S+) *", line):
            uris.append(match.group(1))
        elif match := re.fullmatch(r" +sha256: *(.*?) *", line):
            shas.append(match.group(1).strip("'\""))
    if len(uris) != len(shas):
        raise Refused(f"the manifest has {len(uris)} uri lines but {len(shas)} sha256 lines")
    return list(zip(uris, shas))


def verify(dist: Path, manifest: Path | None = None) -> int:
    """Every manifest and checksums.txt checksum is a real sha256 of its archive."""
    manifest = manifest or dist / f"{PLUGIN}.yaml"
    platforms = manifest_platforms(manifest.read_text())
    if not platforms:
        raise Refused(f"{manifest} names no platform")
    listed = {}
    sums = dist / "checksums.txt"
    if not sums.is_file():
        raise Refused(f"{sums} is missing")
    for line in sums.read_text().splitlines():
        sha, _, name = line.partition("  ")
        listed[name] = sha
    for uri, sha in platforms:
        name = uri.rsplit("/", 1)[-1]
        if not SHA256.match(sha) or set(sha) == {"0"}:
            raise Refused(f"{manifest.name}: the sha256 of {name} is a placeholder ({sha!r})")
        path = dist / name
        if not path.is_file():
            raise Refused(f"{manifest.name} names {name}, which is not in {dist}")
        real = sha256_of(path)
        if sha != real:
            raise Refused(f"{manifest.name}: the sha256 of {name} is {sha}, the archive's is {real}")
        if listed.get(name) != real:
            raise Refused(f"checksums.txt: {name} is {listed.get(name)!r}, the archive's sha256 is {real}")
    # Archives of this version only: a dist/ may still hold an older version's.
    version = re.search(r"^  version: v(\S+)$", manifest.read_text(), re.M)
    if not version:
        raise Refused(f"{manifest} has no spec.version")
    archives = sorted(p.name for p in dist.glob(f"{NAME}_{version.group(1)}_*.tar.gz"))
    unlisted = [a for a in archives if a not in listed]
    if unlisted:
        raise Refused(f"checksums.txt does not cover {', '.join(unlisted)}")
    return len(platforms)


# --- command line -----------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    meta = sub.add_parser("meta")
    meta.add_argument("field", nargs="?", choices=["version", "repository"])
    check = sub.add_parser("check-version")
    check.add_argument("--tag")
    sub.add_parser("notes")
    docs = sub.add_parser("docs")
    docs.add_argument("--binary", required=True, type=Path)
    docs.add_argument("dir", type=Path)
    pkg = sub.add_parser("package")
    pkg.add_argument("--binary", required=True, type=Path)
    pkg.add_argument("--platform", required=True, help="OS/ARCH, e.g. linux/amd64")
    pkg.add_argument("--docs", required=True, type=Path)
    pkg.add_argument("--out", required=True, type=Path)
    pkg.add_argument("--version", help="(make dist-check only) instead of Cargo.toml's")
    rend = sub.add_parser("render")
    rend.add_argument("--dist", required=True, type=Path)
    rend.add_argument("--tag")
    rend.add_argument("--local", action="store_true")
    rend.add_argument("--require-all", action="store_true", help="with --local: every platform, as a release")
    rend.add_argument("--base-url")
    rend.add_argument("--version", help="(make dist-check only, with --local) instead of Cargo.toml's")
    ver = sub.add_parser("verify")
    ver.add_argument("--dist", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "meta":
            values = cargo_meta()
            if args.field:
                print(values[args.field])
            else:
                for key, value in values.items():
                    print(f"{key}={value}")
        elif args.command == "check-version":
            version = check_version(ROOT, args.tag)
            print(f"version {version}: Cargo.toml, CHANGELOG.md" + (f" and tag {args.tag} agree" if args.tag else " agree"))
        elif args.command == "notes":
            version, _, body = changelog_top()
            sys.stdout.write(body)
        elif args.command == "docs":
            make_docs(args.binary, args.dir)
        elif args.command == "package":
            os_name, _, arch = args.platform.partition("/")
            version = args.version or cargo_meta()["version"]
            path = package(args.binary, os_name, arch, args.docs, args.out, version, source_epoch())
            check_layout(path, os_name)
            print(path)
        elif args.command == "render":
            if args.version and not args.local:
                raise Refused("--version is for --local test manifests only")
            manifest = render(args.dist, tag=args.tag, local=args.local, base_url=args.base_url, version=args.version, require_all=args.require_all)
            print(manifest)
        elif args.command == "verify":
            count = verify(args.dist)
            print(f"{args.dist}/{PLUGIN}.yaml: {count} platform(s), each sha256 real and matching its archive; checksums.txt covers every archive")
    except Refused as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
