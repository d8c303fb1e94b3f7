"""The local cluster's object store (``make cluster``): moto's S3 server, which installs from PyPI
and stands in for MinIO/S3 on this machine, with *enforced* access keys and a snapshot to disk so
that a stop/start keeps the bucket.

    python scripts/s3server.py --port 19000 --state-dir .cluster/s3 --bucket driftloop
    env: S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY (the keys that the store accepts; any other key -> 403)

moto keeps everything in memory. This launcher:
  1. starts moto's werkzeug app in-process (as ThreadedMotoServer does) with auth OFF, behind a guard
     that, once auth is on, refuses /moto-api/* (reset, reset-auth) and unsigned requests with 403,
  2. creates an IAM user with an inline policy `s3:*` and an access key, then overwrites that key's id
     and secret with the ones from the environment (moto's IAM API only generates random keys),
  3. restores the snapshot of state-dir/objects (if any) and creates the bucket,
  4. turns IAM auth ON (settings.INITIAL_NO_AUTH_ACTION_COUNT = 0): from now on every request must be
     SigV4-signed with those keys (unknown key -> 403 InvalidAccessKeyId, wrong secret -> 403
     SignatureDoesNotMatch, unsigned -> 403 AccessDenied),
  5. on SIGTERM/SIGINT writes every object of every bucket to state-dir/objects and exits.
A SIGKILL loses what was written since the last start (the snapshot is taken on a clean stop only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, unquote

ACCOUNT = "123456789012"  # moto's default account
BOOTSTRAP = "driftloop-bootstrap"  # the access key id of this process's own client while it starts
_local = threading.local()
V2_SUBRESOURCES = {
    "acl",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
    "tagging",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
}


def presigned_ok(environ: dict, secret: str, key_id: str) -> bool:
    """Check a SigV4 query-string signature (a presigned URL) the way S3 does. moto's IAM auth only
    understands the Authorization header and fails presigned requests with a 500 (KeyError), but
    MLflow 3.17 clients download artifacts through presigned URLs that the server hands out."""
    import datetime
    import hashlib
    import hmac
    from urllib.parse import parse_qsl

    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path, _, query = raw.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    q = dict(params)
    if "Signature" in q and "AWSAccessKeyId" in q:  # SigV2 query auth (boto3's default for presigned URLs)
        import base64
        import time as _time
        from urllib.parse import unquote as _unq

        if q["AWSAccessKeyId"] != key_id or int(q.get("Expires", "0")) < _time.time():
            return False
        sub = sorted((k, v) for k, v in params if k in V2_SUBRESOURCES)
        resource = _unq(path) + ("?" + "&".join(f"{k}={v}" if v else k for k, v in sub) if sub else "")
        sts = "\n".join(
            [environ["REQUEST_METHOD"], environ.get("HTTP_CONTENT_MD5", ""), environ.get("CONTENT_TYPE", ""), q["Expires"], resource]
        )
        want = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()
        return hmac.compare_digest(want, q["Signature"])
    try:
        if q["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            return False
        cred_key, date, region, service, term = q["X-Amz-Credential"].split("/")
        amz_date, expires, signed = q["X-Amz-Date"], int(q["X-Amz-Expires"]), q["X-Amz-SignedHeaders"]
        signature = q["X-Amz-Signature"]
    except (KeyError, ValueError):
        return False
    if cred_key != key_id:
        return False
    t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    if datetime.datetime.now(datetime.UTC) > t + datetime.timedelta(seconds=expires):
        return False
    enc = lambda v: quote(v, safe="-_.~")  # noqa: E731
    cq = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params) if k != "X-Amz-Signature")
    headers = ""
    for h in signed.split(";"):
        v = environ.get("HTTP_HOST") if h == "host" else environ.get("HTTP_" + h.upper().replace("-", "_"))
        if v is None:
            return False
        headers += f"{h}:{' '.join(v.strip().split())}\n"
    creq = "\n".join([environ["REQUEST_METHOD"], path, cq, headers, signed, "UNSIGNED-PAYLOAD"])
    scope = f"{date}/{region}/{service}/{term}"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, term):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(k, sts.encode(), hashlib.sha256).hexdigest(), signature)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--region", default="us-east-1")
    args = ap.parse_args()
    key_id, secret = os.environ["S3_ACCESS_KEY_ID"], os.environ["S3_SECRET_ACCESS_KEY"]
    state = Path(args.state_dir)
    objects = state / "objects"

    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    import boto3
    from botocore.config import Config
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.models import iam_backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    _orig_auth = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def _auth(self, *a, **kw):  # a presigned request already checked by the guard: skip moto's check
        if getattr(_local, "presigned", False):
            return None
        return _orig_auth(self, *a, **kw)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = _auth
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")  # auth off while bootstrapping
    moto_app = DomainDispatcherApplication(create_backend_app)
    guard = {"on": False}

    def app(environ, start_response):
        """Refuse what moto would let through once auth is on: its /moto-api/ control plane (reset,
        reset-auth: anyone could wipe the store or turn auth off) and unsigned requests (moto answers
        some of them with a 500 KeyError instead of a 403)."""
        if not guard["on"]:
            # until the snapshot is restored and auth is on, only the bootstrap client gets in: a
            # client listing a half-restored store would see objects missing (seen: an ingest gate
            # that read 2 of its 3 landing files right after a restart). Others get 503 SlowDown,
            # which S3 clients retry with backoff.
            if f"Credential={BOOTSTRAP}/" not in environ.get("HTTP_AUTHORIZATION", ""):
                body = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>the store is starting</Message></Error>"
                start_response("503 Slow Down", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
                return [body]
            return moto_app(environ, start_response)
        if guard["on"]:
            path = environ.get("PATH_INFO", "")
            qs = environ.get("QUERY_STRING", "")
            presigned = "X-Amz-Credential" in qs or "Signature=" in qs
            ok = "HTTP_AUTHORIZATION" in environ or (presigned and presigned_ok(environ, secret, key_id))
            if path.startswith("/moto-api") or not ok:
                body = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
                return [body]
            if presigned and "HTTP_AUTHORIZATION" not in environ:
                _local.presigned = True
                try:
                    return list(moto_app(environ, start_response))
                finally:
                    _local.presigned = False
        return moto_app(environ, start_response)

    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://{args.host}:{args.port}"

    def client(service: str, kid: str, sec: str):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            aws_access_key_id=kid,
            aws_secret_access_key=sec,
            region_name=args.region,
            config=Config(retries={"max_attempts": 2}),
        )

    iam = client("iam", BOOTSTRAP, BOOTSTRAP)
    iam.create_user(UserName="driftloop")
    iam.put_user_policy(
        UserName="driftloop",
        PolicyName="s3-all",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
    )
    iam.create_access_key(UserName="driftloop")
    user = iam_backends[ACCOUNT]["global"].get_user("driftloop")
    user.access_keys[0].access_key_id = key_id  # choose the keys: moto generates random ones
    user.access_keys[0].secret_access_key = secret

    s3 = client("s3", BOOTSTRAP, BOOTSTRAP)  # auth is off until the store is whole
    restored = 0
    if objects.is_dir():
        for bdir in sorted(p for p in objects.iterdir() if p.is_dir()):
            s3.create_bucket(Bucket=bdir.name)
            for f in bdir.rglob("*"):
                if f.is_file():
                    s3.put_object(Bucket=bdir.name, Key=unquote(f.relative_to(bdir).as_posix()), Body=f.read_bytes())
                    restored += 1
    have = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for b in args.bucket:
        if b not in have:
            s3.create_bucket(Bucket=b)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # auth on from here
    guard["on"] = True
    s3 = client("s3", key_id, secret)  # the snapshot at the stop reads with the store's own keys
    print(f"s3server ready on {endpoint} (buckets {sorted(have | set(args.bucket))}, {restored} objects restored)", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1):
        pass

    # snapshot: every object of every bucket (latest versions), written to a fresh dir then swapped in
    t0 = time.time()
    tmp = state / "objects.new"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = 0
    for b in s3.list_buckets()["Buckets"]:
        (tmp / b["Name"]).mkdir()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            for o in page.get("Contents", []):
                # keep "/" as directories, quote anything else odd
                name = quote(o["Key"], safe="/=-_.~ ")
                if name.endswith("/") or "//" in name or name.startswith("/"):  # "dir/" markers, empty parts
                    name = quote(o["Key"], safe="=-_.~ ")
                dest = tmp / b["Name"] / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(s3.get_object(Bucket=b["Name"], Key=o["Key"])["Body"].read())
                n += 1
    shutil.rmtree(objects, ignore_errors=True)
    tmp.rename(objects)
    print(f"s3server snapshot: {n} objects in {time.time() - t0:.1f}s", flush=True)
    server.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
