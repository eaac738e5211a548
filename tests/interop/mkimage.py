#!/usr/bin/env python3
"""Write a deterministic OCI image (or two-platform index) into an OCI layout.

Same seed + options => byte-identical blobs and digests, so tests can compare
what a registry hands back against what we generated, without any network.

    mkimage.py DIR --seed 7 --tag v1 [--layers 2] [--layer-size 65536] [--index]
               [--file PATH_IN_IMAGE=LOCAL_FILE ...]

Each --file lands in one more (top) layer, for images with real package databases.

Adds (or replaces) TAG in DIR/index.json and prints a JSON summary:
{"tag", "mediaType", "digest", "size", "images": [{"platform", "digest",
 "config", "layers": [digest...]}]}
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = "2024-01-01T00:00:00Z"
PLATFORMS = [
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux", "variant": "v8"},
]


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class Layout:
    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def put(self, media_type, data):
        hexd = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.root, "blobs", "sha256", hexd), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + hexd, "size": len(data)}

    def tag(self, tag, desc):
        path = os.path.join(self.root, "index.json")
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        if os.path.exists(path):
            with open(path) as f:
                index = json.load(f)
        ref = "org.opencontainers.image.ref.name"
        index["manifests"] = [
            m for m in index["manifests"] if m.get("annotations", {}).get(ref) != tag
        ] + [dict(desc, annotations={ref: tag})]
        with open(path, "wb") as f:
            f.write(dumps(index))
        with open(os.path.join(self.root, "oci-layout"), "wb") as f:
            f.write(dumps({"imageLayoutVersion": "1.0.0"}))


def random_bytes(rng, size):
    # randbytes takes at most 2**31 bits at once: large layers are made a MiB at a time
    # (small ones exactly as before, so their digests do not change).
    if size <= 1 << 26:
        return rng.randbytes(size)
    mib = 1 << 20
    return b"".join(rng.randbytes(min(mib, size - at)) for at in range(0, size, mib))


def layer_tar(rng, n, size):
    # Fixed mtime/owner/ordering; random (incompressible) content so that the
    # gzip blob is roughly `size` bytes and differs per seed.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        d = tarfile.TarInfo(f"layer{n}")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(d)
        for name, data in [
            (f"layer{n}/data.bin", random_bytes(rng, size)),
            (f"layer{n}/hello.txt", f"layer {n} seed {rng.random()}\n".encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def files_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for image_path, local_path in files:
            with open(local_path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(image_path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data):
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def write_image(layout, seed, platform, nlayers, size, files=()):
    rng = random.Random(f"{seed}/{platform['architecture']}")
    layers, diff_ids = [], []
    raws = [layer_tar(rng, n, size) for n in range(nlayers)]
    if files:
        raws.append(files_tar(files))
    for raw in raws:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append(layout.put(OCI_LAYER, gzip_bytes(raw)))
    nlayers = len(raws)
    config = dict(platform)
    config.update(
        created=EPOCH,
        config={
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.example.seed": str(seed)},
        },
        rootfs={"type": "layers", "diff_ids": diff_ids},
        history=[{"created": EPOCH, "created_by": f"mkimage layer {n}"} for n in range(nlayers)],
    )
    cfg = layout.put(OCI_CONFIG, dumps(config))
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg, "layers": layers}
    desc = layout.put(OCI_MANIFEST, dumps(manifest))
    summary = {
        "platform": platform,
        "digest": desc["digest"],
        "config": cfg["digest"],
        "layers": [l["digest"] for l in layers],
    }
    return desc, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--seed", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--layer-size", type=int, default=64 * 1024)
    ap.add_argument("--index", action="store_true", help="two-platform image index")
    ap.add_argument("--file", action="append", default=[], metavar="PATH_IN_IMAGE=LOCAL_FILE")
    args = ap.parse_args()
    files = [tuple(f.split("=", 1)) for f in args.file]

    layout = Layout(args.dir)
    platforms = PLATFORMS if args.index else PLATFORMS[:1]
    built = [
        write_image(layout, args.seed, p, args.layers, args.layer_size, files) for p in platforms
    ]
    if args.index:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [dict(d, platform=s["platform"]) for d, s in built],
        }
        top = layout.put(OCI_INDEX, dumps(index))
    else:
        top = built[0][0]
    layout.tag(args.tag, top)
    print(json.dumps(dict(tag=args.tag, images=[s for _, s in built], **top)))


if __name__ == "__main__":
    main()
