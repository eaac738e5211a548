#!/usr/bin/env python3
"""A webhook receiver that redeploys on push: it verifies Berth's Standard Webhooks
signature, pulls exactly the pushed digest with podman and then runs a command (restart a
container or a service).

Standard library only. See README.md next to this file.

    WEBHOOK_SECRET=whsec_... redeploy.py --registry registry.example:5000 \
        --repository acme/app --then 'systemctl restart app'
"""

import argparse
import base64
import collections
import datetime
import hashlib
import hmac
import http.server
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time

# Deliveries signed further than this from our clock are refused, so a captured request
# cannot be replayed later (Standard Webhooks recommends 5 minutes).
TOLERANCE_SECONDS = 5 * 60
# Remembered webhook-ids; a retry of the same message is acknowledged and not acted on.
SEEN_LIMIT = 10_000
# A Berth push payload is a few KiB; anything much larger is not one.
MAX_BODY = 1 << 20
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
LOG_LOCK = threading.Lock()


def log(message):
    # One write per line under a lock: request threads and the deployer log concurrently.
    with LOG_LOCK:
        sys.stderr.write(f"redeploy: {message}\n")
        sys.stderr.flush()


def secret_key(secret):
    """The HMAC key of a `whsec_<base64>` secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    if not key:
        raise ValueError("empty secret")
    return key


def signature_valid(key, msg_id, timestamp, body, header):
    """Whether any `v1,<base64>` signature in the header is this message's (constant time)."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    valid = False
    for candidate in header.split(" "):
        version, _, value = candidate.partition(",")
        # Compare every candidate, so timing says nothing about which one matched.
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            valid = True
    return valid


def pushed_image(payload):
    """(repository, digest, tag, pushed_at) of a push, from either payload format; None
    otherwise."""
    if payload.get("type") == "io.berth.manifest.pushed":  # CloudEvents
        data = payload.get("data") or {}
        tags = data.get("tags") or [""]
        try:
            pushed_at = int(datetime.datetime.fromisoformat(payload.get("time", "")).timestamp())
        except (TypeError, ValueError):
            pushed_at = 0
        return data.get("repository"), data.get("digest"), tags[0], pushed_at
    push = payload.get("push_data")
    if isinstance(push, dict):  # Docker Hub format
        repository = (payload.get("repository") or {}).get("repo_name")
        return repository, push.get("digest"), push.get("tag", ""), push.get("pushed_at", 0)
    return None


class Deployer:
    """Runs deployments one at a time, in the order they arrived."""

    def __init__(self, args):
        self.args = args
        self.jobs = queue.Queue()
        self.lock = threading.Lock()
        self.seen = collections.OrderedDict()  # webhook-id -> None, oldest first
        # (repository, tag) -> pushed_at of what was last deployed: a late retry of an
        # older push must not roll the service back.
        self.newest = {}
        threading.Thread(target=self.work, daemon=True).start()

    def claim(self, msg_id):
        """False when this message was already accepted (a redelivery)."""
        with self.lock:
            if msg_id in self.seen:
                return False
            self.seen[msg_id] = None
            while len(self.seen) > SEEN_LIMIT:
                self.seen.popitem(last=False)
            return True

    def forget(self, msg_id):
        # A failed deployment can then be retried with `berth webhook redeliver`.
        with self.lock:
            self.seen.pop(msg_id, None)

    def submit(self, msg_id, repository, digest, tag, pushed_at):
        self.jobs.put((msg_id, repository, digest, tag, pushed_at))

    def work(self):
        while True:
            msg_id, repository, digest, tag, pushed_at = self.jobs.get()
            key = (repository, tag)
            if pushed_at < self.newest.get(key, 0):
                log(f"{msg_id}: {repository}:{tag} {digest} is older than what is deployed; "
                    "skipped")
                continue
            image = f"{self.args.registry}/{repository}@{digest}"
            try:
                deployed = self.deploy(msg_id, image, repository, digest, tag)
            except OSError as error:  # podman or the shell missing: say so and keep serving
                log(f"{msg_id}: {error}")
                deployed = False
            if deployed:
                self.newest[key] = pushed_at
            else:
                self.forget(msg_id)

    def deploy(self, msg_id, image, repository, digest, tag):
        env = dict(os.environ, REDEPLOY_IMAGE=image, REDEPLOY_REPOSITORY=repository,
                   REDEPLOY_DIGEST=digest, REDEPLOY_TAG=tag, REDEPLOY_WEBHOOK_ID=msg_id)
        env.pop("WEBHOOK_SECRET", None)  # the commands have no need for it
        pull = shlex.split(self.args.podman) + ["pull"] + self.args.pull_arg + [image]
        log(f"{msg_id}: {shlex.join(pull)}")
        if subprocess.run(pull, env=env, stdout=sys.stderr).returncode != 0:
            log(f"{msg_id}: pull of {image} failed")
            return False
        if self.args.then:
            log(f"{msg_id}: {self.args.then}")
            then = subprocess.run(self.args.then, shell=True, env=env, stdout=sys.stderr)
            if then.returncode != 0:
                log(f"{msg_id}: '{self.args.then}' failed")
                return False
        log(f"{msg_id}: deployed {image}")
        return True


def handler_for(args, key, deployer):
    class Receiver(http.server.BaseHTTPRequestHandler):
        def answer(self, status, message):
            body = (message + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            # For health checks: whether the receiver is up.
            self.answer(200, "redeploy receiver: POST webhooks here")

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self.answer(400, "bad Content-Length")
            if not 0 <= length <= MAX_BODY:
                return self.answer(413, "body too large")
            body = self.rfile.read(length)
            msg_id = self.headers.get("webhook-id", "")
            timestamp = self.headers.get("webhook-timestamp", "")
            signature = self.headers.get("webhook-signature", "")
            if not (msg_id and timestamp.isdigit() and signature):
                return self.answer(401, "missing webhook-id, -timestamp or -signature")
            if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
                return self.answer(401, "timestamp too far from now")
            if not signature_valid(key, msg_id, timestamp, body, signature):
                log(f"{msg_id}: bad signature from {self.client_address[0]}")
                return self.answer(401, "bad signature")
            try:
                payload = json.loads(body)
            except ValueError:
                return self.answer(400, "body is not JSON")
            pushed = pushed_image(payload) if isinstance(payload, dict) else None
            if pushed is None:
                return self.answer(200, "not a push; nothing to do")  # pings, other events
            repository, digest, tag, pushed_at = pushed
            if not isinstance(pushed_at, int):
                pushed_at = 0
            if not (isinstance(repository, str) and isinstance(digest, str)
                    and DIGEST.fullmatch(digest)):
                return self.answer(400, "push without a repository or digest")
            if args.repository and repository not in args.repository:
                return self.answer(200, f"{repository} is not deployed here")
            if not deployer.claim(msg_id):
                return self.answer(200, "already accepted")
            deployer.submit(msg_id, repository, digest, tag, pushed_at)
            # Answer at once: a pull can take longer than the sender waits (10 s).
            self.answer(200, f"deploying {repository}@{digest}")

        def log_message(self, format, *fmt_args):
            log(f"{self.client_address[0]} {format % fmt_args}")

    return Receiver


def main():
    parser = argparse.ArgumentParser(
        description="Pull the pushed digest and redeploy on Berth push webhooks.",
        epilog="The signing secret is read from WEBHOOK_SECRET (or --secret-file), never from "
        "the command line. --then runs with REDEPLOY_IMAGE, REDEPLOY_REPOSITORY, "
        "REDEPLOY_DIGEST, REDEPLOY_TAG and REDEPLOY_WEBHOOK_ID set.")
    env = os.environ.get
    parser.add_argument("--listen", default=env("REDEPLOY_LISTEN", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1; env REDEPLOY_LISTEN)")
    parser.add_argument("--port", type=int, default=int(env("REDEPLOY_PORT", "9000")),
                        help="port to listen on (default 9000; env REDEPLOY_PORT)")
    parser.add_argument("--registry", default=env("REDEPLOY_REGISTRY"),
                        help="registry host[:port] to pull from (env REDEPLOY_REGISTRY)")
    parser.add_argument("--repository", action="append", default=[],
                        help="only act on pushes to this repository (repeatable; default all)")
    parser.add_argument("--then", default=env("REDEPLOY_THEN"),
                        help="shell command run after a successful pull (env REDEPLOY_THEN)")
    parser.add_argument("--podman", default=env("REDEPLOY_PODMAN", "podman"),
                        help="podman command with its global options, e.g. 'podman --root DIR' "
                        "(env REDEPLOY_PODMAN)")
    parser.add_argument("--pull-arg", action="append", default=[], metavar="ARG",
                        help="an option for `podman pull`, e.g. --pull-arg=--tls-verify=false "
                        "(repeatable)")
    parser.add_argument("--secret-file", help="read the whsec_ secret from this file")
    args = parser.parse_args()
    if not args.registry:
        parser.error("--registry (or REDEPLOY_REGISTRY) is required")
    if args.secret_file:
        with open(args.secret_file) as f:
            secret = f.read().strip()
    else:
        secret = env("WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        parser.error("WEBHOOK_SECRET (or --secret-file) must hold the whsec_ secret Berth printed")
    try:
        key = secret_key(secret)
    except ValueError:
        parser.error("the secret after whsec_ is not base64")
    server = http.server.ThreadingHTTPServer(
        (args.listen, args.port), handler_for(args, key, Deployer(args)))
    log(f"listening on {args.listen}:{server.server_address[1]}, pulling from {args.registry}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
