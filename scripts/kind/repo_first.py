#!/usr/bin/env python3
"""Rewrite a multi-image ``docker save`` archive so kind's node-image build sees every image.

Job: kind v0.33.0 (pkg/build/nodeimage/internal/container/docker/archive.go) reads the tags
of an image archive from whichever of ``manifest.json`` / ``repositories`` comes first in
the tar, and from ``manifest.json`` only entry [0]. docker writes ``manifest.json`` first,
so an archive holding several images would count as one. This writes a copy whose first
member is a ``repositories`` file naming every image with its fully qualified name (the
form kind compares against), followed by the original members unchanged.

Invariants: the output is written beside the destination and renamed into place; the
image layers are copied byte for byte. Standard library only (runs before any venv).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile


def qualify(name: str) -> str:
    """docker's short names -> the fully qualified form kind uses."""
    first = name.split("/")[0]
    if "/" not in name:
        return "docker.io/library/" + name
    if "." in first or ":" in first or first == "localhost":
        return name
    return "docker.io/" + name


def main(src: str, dst: str) -> None:
    with tarfile.open(src) as tin:
        member = tin.extractfile("manifest.json")
        if member is None:
            sys.exit(f"repo_first: {src} has no manifest.json")
        manifest = json.load(member)
        repos: dict[str, dict[str, str]] = {}
        for entry in manifest:
            for ref in entry.get("RepoTags") or []:
                repo, tag = ref.rsplit(":", 1)
                repos.setdefault(qualify(repo), {})[tag] = entry["Config"].split(".")[0]
        data = json.dumps(repos).encode()
        tmp = dst + ".tmp"
        with tarfile.open(tmp, "w") as tout:
            info = tarfile.TarInfo("repositories")
            info.size = len(data)
            info.mode = 0o644
            tout.addfile(info, io.BytesIO(data))
            for m in tin.getmembers():
                if m.name != "repositories":
                    tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
        os.replace(tmp, dst)
    names = sorted(f"{r}:{t}" for r, tags in repos.items() for t in tags)
    print(f"repo_first: {dst}: {', '.join(names)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: repo_first.py SRC.tar DST.tar")
    main(sys.argv[1], sys.argv[2])
