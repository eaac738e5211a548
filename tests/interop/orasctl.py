#!/usr/bin/env python3
"""Tiny CLI over oras-py (it ships no CLI) for oras.sh. Plain HTTP; anonymous unless
--creds USER:PASSWORD is given, which oras-py's token backend then trades for a bearer
token at the realm of the registry's 401 challenge (Basic on the /token request).

  orasctl.py [--creds USER:PASSWORD] COMMAND ...

  orasctl.py push REF FILE --artifact-type T [--subject JSON] [--annotation K=V] [--chunked]
      OCI 1.1 artifact: manifest.artifactType=T, empty config, FILE as the layer.
  orasctl.py push-legacy REF FILE --config-type T [--subject JSON]
      oras-py's own Registry.push(): the artifact type lives only in config.mediaType.
  orasctl.py pull REF OUTDIR

push/push-legacy print {"digest", "status", "oci_subject"} for the manifest PUT.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile

import oras.oci
import oras.provider

EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
         "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()}


def ok(resp):
    if resp.status_code not in (200, 201, 202):
        sys.exit(f"{resp.request.method} {resp.url} -> {resp.status_code} {resp.text}")
    return resp


def report(manifest, resp):
    # requests serialises json= with json.dumps defaults, so this is the digest of the bytes sent.
    digest = "sha256:" + hashlib.sha256(json.dumps(manifest).encode()).hexdigest()
    print(json.dumps({"digest": digest, "status": resp.status_code,
                      "oci_subject": resp.headers.get("OCI-Subject")}))


def push(reg, a):
    container = reg.get_container(a.ref)
    layer = oras.oci.NewLayer(a.file, media_type="application/vnd.example.file")
    layer["annotations"] = {"org.opencontainers.image.title": os.path.basename(a.file)}
    # Chunked = POST, then one PATCH per 64 KiB (Content-Range without "bytes="), then PUT.
    ok(reg.upload_blob(a.file, container, layer, do_chunked=a.chunked, chunk_size=65536))
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as f:
        f.write(b"{}")
        f.flush()
        ok(reg.upload_blob(f.name, container, dict(EMPTY)))
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": a.artifact_type, "config": EMPTY, "layers": [layer]}
    if a.annotation:
        manifest["annotations"] = dict(kv.split("=", 1) for kv in a.annotation)
    if a.subject:
        manifest["subject"] = json.loads(a.subject)
    report(manifest, ok(reg.upload_manifest(manifest, container)))


def push_legacy(reg, a):
    subject = oras.oci.Subject(**json.loads(a.subject)) if a.subject else None
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as cfg:
        cfg.write(b"{}")
        cfg.flush()
        sent = []
        upload = reg.upload_manifest

        def spy(manifest, container):  # push() builds the manifest internally; keep a copy
            sent.append(manifest)
            return upload(manifest, container)

        reg.upload_manifest = spy
        resp = reg.push(a.ref, files=[a.file], manifest_config=f"{cfg.name}:{a.config_type}",
                        subject=subject, disable_path_validation=True, quiet=True)
    report(sent[0], ok(resp))


def refresh_rejected_tokens(auth):
    """oras-py (0.2.43; oras-project/oras-py#187, open) keeps the first bearer token it gets
    and re-sends it when the registry answers 401. A push starts with a HEAD (does the blob
    exist?) whose challenge asks for `pull` only, so the POST that follows gets 401
    error="insufficient_scope" forever. Do what the token spec asks of a client instead (and
    skopeo, podman, docker, oras-go do): on a 401 with a token in hand, get a new token for
    the scope of that challenge. Registries that ignore scopes (ghcr.io) never send the 401."""
    inner = auth.authenticate_request

    def authenticate_request(original, headers, refresh=False):
        return inner(original, headers, refresh=refresh or original.status_code == 401)

    auth.authenticate_request = authenticate_request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--creds", metavar="USER:PASSWORD")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push")
    p.add_argument("ref")
    p.add_argument("file")
    p.add_argument("--artifact-type", required=True)
    p.add_argument("--subject")
    p.add_argument("--annotation", action="append")
    p.add_argument("--chunked", action="store_true")
    p = sub.add_parser("push-legacy")
    p.add_argument("ref")
    p.add_argument("file")
    p.add_argument("--config-type", required=True)
    p.add_argument("--subject")
    p = sub.add_parser("pull")
    p.add_argument("ref")
    p.add_argument("outdir")
    a = ap.parse_args()

    reg = oras.provider.Registry(insecure=True)
    refresh_rejected_tokens(reg.auth)
    if a.creds:
        # What Registry.login() does in-process, without writing a docker config file.
        user, _, password = a.creds.partition(":")
        reg.auth.set_basic_auth(user, password)
    if a.cmd == "push":
        push(reg, a)
    elif a.cmd == "push-legacy":
        push_legacy(reg, a)
    else:
        for path in reg.pull(target=a.ref, outdir=a.outdir):
            print(path)


if __name__ == "__main__":
    main()
