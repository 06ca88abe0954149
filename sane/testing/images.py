"""The container fleet's images, built from Debian packages without any registry.

- ``debian`` (bookworm) and ``debian-trixie``: ``mmdebstrap --variant=minbase`` plus the
  packages in ``containers/debian/packages`` (OpenSSH; bash is the login shell, no
  Python), with ``containers/debian/rootfs`` on top; 20-40 s each, 108-143 MB.
- ``busybox``: an Alpine-like tree: the host's busybox and its applet links (busybox
  ash is the login shell, busybox coreutils, no Python), Dropbear with the libraries
  ``ldd`` lists, and ``containers/busybox/rootfs``; under two seconds, 5.3 MB.

The tag is a hash of the build inputs (the recipe: mmdebstrap's arguments, or the busybox
tree's parts and the host binaries it copies; :data:`RECIPE`; the image's ``containers/``
files; its suite), so an image is built once and again only when its recipe changes. The
Debian packages come from the archive at build time (``--rebuild`` refreshes them).
``containers/build-images`` is the command; :mod:`sane.testing.containers` only checks
that the tagged image exists.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sane.flock import flock_within
from sane.testing.engine import (
    ContainersUnavailable,
    Engine,
    EngineError,
    find_engine,
    owned_tempdir,
    state_dir,
)

__all__ = ["IMAGES", "ImageSpec", "build", "inputs_dir", "main", "reference"]

REPOSITORY = "localhost/sane-test"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ENTRYPOINT = 'ENTRYPOINT ["/entrypoint.sh"]'
# Bump when the build code changes in a way the hashed recipe below does not show.
RECIPE = "1"
BUSYBOX = "/bin/busybox"
BUSYBOX_TOOLS = {
    "/usr/sbin/dropbear": "usr/sbin/dropbear",
    "/usr/bin/dropbearconvert": "usr/bin/dropbearconvert",
}
BUSYBOX_DIRS = (
    "bin",
    "sbin",
    "usr",
    "usr/bin",
    "usr/sbin",
    "etc",
    "root",
    "tmp",
    "dev",
    "proc",
    "sys",
    "run",
    "var",
    "var/log",
    "lib",
    "lib64",
)


@dataclass(frozen=True)
class ImageSpec:
    """One image of the fleet: how it is built and what a login on it looks like."""

    name: str
    kind: Literal["debian", "busybox"]
    suite: str | None
    login_shell: str
    prefix: str  # server names in a fleet: PREFIX1, PREFIX2, ...


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("debian", "debian", "bookworm", "/bin/bash", "deb"),
        ImageSpec("debian-trixie", "debian", "trixie", "/bin/bash", "trixie"),
        ImageSpec("busybox", "busybox", None, "/bin/ash", "bb"),
    )
}


def inputs_dir() -> Path:
    """``containers/`` of the checkout (the images' files)."""
    return Path(__file__).resolve().parents[2] / "containers"


def _input_files(spec: ImageSpec) -> list[Path]:
    root = inputs_dir() / spec.kind
    if not root.is_dir():
        raise ContainersUnavailable(
            f"the image inputs are missing ({root}): the container "
            "fleet needs a checkout of tmux-sane"
        )
    return sorted(p for p in root.rglob("*") if p.is_file())


def reference(spec: ImageSpec) -> str:
    """``localhost/sane-test/NAME:HASH``: the hash covers every build input."""
    digest = hashlib.sha256()
    digest.update(f"{RECIPE}\0{spec.name}\0{spec.kind}\0{spec.suite}\0".encode())
    if spec.kind == "debian":
        recipe = _debian_argv(spec, Path("OUT"), "MIRROR", Path("ROOTFS"))
    else:  # the host's binaries go in as they are: hash them too
        recipe = [*BUSYBOX_TOOLS, *BUSYBOX_DIRS]
        for binary in (BUSYBOX, *BUSYBOX_TOOLS):
            try:
                digest.update(Path(binary).read_bytes())
            except OSError as exc:
                raise ContainersUnavailable(
                    f"cannot build the busybox image: {exc} (apt-get install busybox dropbear-bin)"
                ) from exc
    digest.update("\0".join([*recipe, *map(str, sorted(_PRIVATE.items()))]).encode())
    base = inputs_dir()
    for path in _input_files(spec):
        mode = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"\0{path.relative_to(base)}\0{mode}\0".encode())
        digest.update(path.read_bytes())
    return f"{REPOSITORY}/{spec.name}:{digest.hexdigest()[:16]}"


# ---------------------------------------------------------------- tar helpers

_PRIVATE = {"etc/shadow": 0o600, "root": 0o700, "tmp": 0o1777}


def _add(
    tar: tarfile.TarFile,
    name: str,
    *,
    data: bytes | None = None,
    link: str | None = None,
    mode: int = 0o755,
) -> None:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.mtime = 0
    info.mode = _PRIVATE.get(name, mode)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)
    elif data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _overlay(tar: tarfile.TarFile, rootfs: Path, seen: set[str]) -> None:
    """Add ``rootfs``'s files (executables 0755, others 0644; see _PRIVATE)."""
    for path in sorted(rootfs.rglob("*")):
        name = str(path.relative_to(rootfs))
        if path.is_dir():
            if name not in seen:
                _add(tar, name)
                seen.add(name)
        else:
            _add(
                tar, name, data=path.read_bytes(), mode=0o755 if os.access(path, os.X_OK) else 0o644
            )
            seen.add(name)


def _libraries(binaries: Sequence[str]) -> list[str]:
    """The shared objects (loader included) these binaries load, by ``ldd``."""
    found: list[str] = []
    for binary in binaries:
        # a static binary: "not a dynamic executable" (exit 1), nothing to copy
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
            if path.startswith("/") and path not in found:
                found.append(path)
    return found


def _busybox_tar(spec: ImageSpec, out: Path) -> None:
    busybox = Path(BUSYBOX)
    tools = BUSYBOX_TOOLS
    missing = [p for p in [str(busybox), *tools] if not os.access(p, os.X_OK)]
    if missing:
        raise EngineError(f"missing {', '.join(missing)} (apt-get install busybox dropbear-bin)")
    applets = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    seen: set[str] = set()

    def parents(name: str) -> Iterator[str]:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            yield "/".join(parts[:i])

    with tarfile.open(out, "w") as tar:
        for directory in BUSYBOX_DIRS:
            _add(tar, directory)
            seen.add(directory)
        _add(tar, "bin/busybox", data=busybox.read_bytes())
        for applet in applets:
            if applet != "bin/busybox":
                _add(tar, applet, link="/bin/busybox")
        for source, target in tools.items():
            _add(tar, target, data=Path(source).read_bytes())
        for lib in _libraries([str(busybox), *tools]):
            name = lib.lstrip("/")
            for parent in parents(name):
                if parent not in seen:
                    _add(tar, parent)
                    seen.add(parent)
            _add(tar, name, data=Path(lib).read_bytes())
        _overlay(tar, inputs_dir() / "busybox" / "rootfs", seen)


def _debian_argv(spec: ImageSpec, out: Path, mirror: str, rootfs: Path | None = None) -> list[str]:
    base = inputs_dir() / "debian"
    packages = [
        line.strip()
        for line in (base / "packages").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    rootfs = rootfs or base / "rootfs"
    hooks = [
        # our files on top, then the build's own host keys out: each container gets its own
        f'tar -C {rootfs} --owner=0 --group=0 -cf - . | tar -C "$1" -xf -',
        'chmod 0755 "$1/entrypoint.sh"; rm -f "$1"/etc/ssh/ssh_host_*',
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    ]
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        *(f"--customize-hook={hook}" for hook in hooks),
        "--dpkgopt=force-unsafe-io",
        str(spec.suite),
        str(out),
        mirror,
    ]


def _debian_tar(spec: ImageSpec, out: Path, mirror: str) -> None:
    if shutil.which("mmdebstrap") is None:
        raise EngineError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    argv = _debian_argv(spec, out, mirror)
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=900
    )
    if proc.returncode != 0:
        raise EngineError(
            f"mmdebstrap {spec.suite} failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}"
        )


def build(
    engine: Engine,
    spec: ImageSpec,
    *,
    rebuild: bool = False,
    mirror: str = DEFAULT_MIRROR,
    say: Callable[[str], None] | None = None,
    lock_timeout: float = 1800.0,
) -> tuple[str, bool]:
    """Build and import ``spec`` unless its tagged image exists; (reference, built).

    One build of an image at a time per store (a lock in :func:`state_dir`): several
    checkouts bootstrapping at once wait for the first build instead of each running
    mmdebstrap, then find the image built. ``say`` hears that it waits. A rebuild
    removes the image it replaces (unless a container still uses it), so rebuilding
    leaves no untagged layers behind."""
    ref = reference(spec)
    if not rebuild and engine.image_exists(ref):
        return ref, False
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / f"build-{spec.name}.lock", "a") as lock:
        if not flock_within(lock.fileno(), 0):
            if say is not None:
                say(f"{spec.name}: waiting for another build of it to finish")
            if not flock_within(lock.fileno(), lock_timeout, first=0.05, cap=1.0):
                raise EngineError(
                    f"another build of {spec.name} still holds {lock.name} after {lock_timeout:g}s"
                )
        replaced = engine.image_id(ref)
        if replaced is not None and not rebuild:  # built while we waited
            return ref, False
        tmp = owned_tempdir("sane-image-")  # swept if this process is killed mid-build
        try:
            out = tmp / "rootfs.tar"
            if spec.kind == "busybox":
                _busybox_tar(spec, out)
            else:
                _debian_tar(spec, out, mirror)
            engine.must("import", "--change", ENTRYPOINT, str(out), ref, timeout=600)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if replaced is not None and replaced != engine.image_id(ref):
            engine.run("rmi", replaced)  # refused while a container uses it: then it stays
    return ref, True


def prune(engine: Engine) -> list[str]:
    """Remove sane test images other than the current tags; the references removed."""
    current = {reference(spec) for spec in IMAGES.values()}
    out = engine.must("images", "--format", "{{.Repository}}:{{.Tag}}")
    stale = [ref for ref in out.split() if ref.startswith(REPOSITORY + "/") and ref not in current]
    if stale:
        engine.must("rmi", "-f", *stale)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="containers/build-images",
        description="Build the container fleet's images from Debian packages (no registry); "
        "an image whose inputs did not change is kept.",
    )
    parser.add_argument("names", nargs="*", help=f"images (default all: {', '.join(IMAGES)})")
    parser.add_argument(
        "--engine",
        choices=["docker", "podman"],
        help="default: a Docker engine that answers, else podman",
    )
    parser.add_argument("--rebuild", action="store_true", help="build even if tagged already")
    parser.add_argument(
        "--prune", action="store_true", help="also remove sane test images of older recipes"
    )
    parser.add_argument("--mirror", default=os.environ.get("SANE_DEBIAN_MIRROR", DEFAULT_MIRROR))
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in IMAGES]
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)} (known: {', '.join(IMAGES)})")
    try:
        engine = find_engine(args.engine)
    except ContainersUnavailable as exc:
        print(f"build-images: no container engine: {exc.reason}", file=sys.stderr)
        return 3
    status = 0
    for name in args.names or list(IMAGES):
        started = time.monotonic()
        try:
            ref, built = build(
                engine,
                IMAGES[name],
                rebuild=args.rebuild,
                mirror=args.mirror,
                say=lambda text: print(f"build-images: {text}", file=sys.stderr),
            )
        except (EngineError, ContainersUnavailable, subprocess.SubprocessError, OSError) as exc:
            print(f"build-images: {name}: FAILED: {exc}", file=sys.stderr)
            status = 1
            continue
        verb = "built" if built else "cached"
        print(
            f"build-images: {name}: {verb} {ref} ({time.monotonic() - started:.1f} s, "
            f"{engine.kind})",
            file=sys.stderr,
        )
    if args.prune:
        for ref in prune(engine):
            print(f"build-images: removed {ref}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
