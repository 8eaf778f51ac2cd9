"""A real S3 implementation on loopback for leakguard's upload tests: moto's S3 (which
enforces the multipart rules: parts of at least 5 MiB but the last, ETags, completion
order) with IAM authentication on, so every request's SigV4 signature is checked against
an access key created here. Never for production use.

Usage: python s3-server.py [--bucket NAME] [--no-auth]

--no-auth serves without authentication: moto checks header signatures only, and answers a
pre-signed (query-string) request with a 500, so the pre-signed-URL test runs on such a
server (boto3 still signs the URLs it hands out).
Prints one JSON line {"port", "endpoint", "bucket", "accessKeyId", "secretAccessKey",
"region"}, then answers one JSON command per stdin line with one JSON line:
  {"op": "get", "key": K}         -> {"ok", "sha256", "bytes", "contentType"} (boto3 GetObject)
  {"op": "list"}                  -> {"ok", "keys": [...]}
  {"op": "presign", "key": K}     -> {"ok", "url"} (boto3's pre-signed PUT, SigV4 query)
  {"op": "uploads"}               -> {"ok", "uploads": n} (multipart uploads not completed)
EOF is the end: the server stops with its process.
"""
import hashlib
import json
import os
import sys
import threading

if "--no-auth" not in sys.argv:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # authenticate every request
os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

REGION = "us-east-1"
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


def main():
    bucket = "leakguard-test"
    if "--bucket" in sys.argv:
        bucket = sys.argv[sys.argv.index("--bucket") + 1]
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
    iam.create_user(REGION, "leakguard", "/")
    iam.put_user_policy("leakguard", "s3-all", POLICY)
    key = iam.create_access_key("leakguard")

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    port = server.port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    s3.create_bucket(Bucket=bucket)
    print(json.dumps({"port": port, "endpoint": endpoint, "bucket": bucket, "region": REGION,
                      "accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "get":
                r = s3.get_object(Bucket=bucket, Key=cmd["key"])
                body = r["Body"].read()
                out = {"ok": True, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                       "contentType": r.get("ContentType"), "partsCount": r.get("PartsCount")}
                if cmd.get("text"):
                    out["text"] = body.decode("utf-8")
            elif op == "list":
                r = s3.list_objects_v2(Bucket=bucket)
                out = {"ok": True, "keys": [o["Key"] for o in r.get("Contents", [])]}
            elif op == "presign":
                url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": cmd["key"]}, ExpiresIn=600)
                out = {"ok": True, "url": url}
            elif op == "uploads":
                r = s3.list_multipart_uploads(Bucket=bucket)
                out = {"ok": True, "uploads": len(r.get("Uploads", []))}
            else:
                out = {"ok": False, "error": f"unknown op {op}"}
        except Exception as e:  # the answer names the failure; the test decides
            out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out["id"] = cmd.get("id")
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
