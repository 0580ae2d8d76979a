"""Deployment package sizes beside the platforms' limits.

Builds the archives with the real command line (``iotpipe package aws`` and ``iotpipe package
gcp``, into a temporary directory) and reads their manifests:

- AWS Lambda: the code zip and the dependency layer, zipped (each uploaded on its own; the
  limit for a direct upload is 50 MB zipped) and unzipped together (function code plus layers:
  250 MB). Limits: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
- Cloud Functions: the source archive zipped (100 MB for sources), and unzipped together with
  the installed size of its pinned requirements (500 MB for sources plus modules), the latter
  measured from this environment's installed distributions of the same versions.
  Limits: https://cloud.google.com/functions/quotas (Resource limits, "Max deployment size").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from results import json_option, write

MB = 1_000_000
LIMITS = {
    "lambda_zipped_mb": 50,
    "lambda_unzipped_mb": 250,
    "gcf_zipped_mb": 100,
    "gcf_unzipped_mb": 500,
}


def build(platform: str, out: Path) -> dict[str, Any]:
    """Run ``iotpipe package PLATFORM --out OUT``; returns its manifest."""
    command = [str(Path(sys.executable).parent / "iotpipe"), "package", platform, "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    return dict(json.loads((out / "manifest.json").read_text()))


def installed_bytes(requirement: str) -> int | None:
    """Bytes on disk of ``name==version`` as installed here; ``None`` if another version is."""
    name, _, version = requirement.partition("==")
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    if version and dist.version != version:
        return None
    return sum(
        located.stat().st_size
        for file in dist.files or ()
        if (located := Path(str(dist.locate_file(file)))).is_file()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    json_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iotpipe-packages-") as tmp:
        aws = build("aws", Path(tmp) / "aws")
        gcp = build("gcp", Path(tmp) / "gcp")
        source = Path(tmp) / "gcp" / "iotpipe-gcf-source.zip"
        with zipfile.ZipFile(source) as archive:
            source_unzipped = sum(info.file_size for info in archive.infolist())
        source_zipped = source.stat().st_size
    sizes = {name: installed_bytes(req) for name, req in _named(gcp["requirements"])}
    missing = sorted(name for name, size in sizes.items() if size is None)
    figures = {
        "lambda_zips": {name: z["size"] for name, z in aws["zips"].items()},
        "lambda_largest_zip": max(z["size"] for z in aws["zips"].values()),
        "lambda_unzipped": aws["unzipped_total"],
        "gcf_zipped": source_zipped,
        "gcf_source_unzipped": source_unzipped,
        "gcf_modules_installed": sum(size or 0 for size in sizes.values()),
        "gcf_modules_not_measured": missing,
        "limits_mb": LIMITS,
    }
    figures["gcf_unzipped"] = figures["gcf_source_unzipped"] + figures["gcf_modules_installed"]
    show(figures)
    write(args.json, figures)


def _named(requirements: list[str]) -> list[tuple[str, str]]:
    return [(req.partition("==")[0], req) for req in requirements]


def show(f: dict[str, Any]) -> None:
    """Print the sizes beside the limits."""
    limits = f["limits_mb"]
    rows = [
        (
            "Lambda, largest zip (code or layer)",
            f["lambda_largest_zip"],
            limits["lambda_zipped_mb"],
        ),
        ("Lambda, code + layer unzipped", f["lambda_unzipped"], limits["lambda_unzipped_mb"]),
        ("Cloud Functions source zip", f["gcf_zipped"], limits["gcf_zipped_mb"]),
        ("Cloud Functions source + modules", f["gcf_unzipped"], limits["gcf_unzipped_mb"]),
    ]
    print(f"{'':40} {'size':>10} {'limit':>8} {'share':>6}")
    for label, size, limit in rows:
        print(f"{label:40} {size / MB:>7.2f} MB {limit:>5} MB {size / (limit * MB):>6.1%}")
    if f["gcf_modules_not_measured"]:
        print(f"not installed here, not counted: {', '.join(f['gcf_modules_not_measured'])}")


if __name__ == "__main__":
    main()
