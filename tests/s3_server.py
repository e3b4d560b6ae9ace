"""An S3-compatible server on 127.0.0.1 (moto's server mode, as s3fs's own tests use), with a bucket,
and the environment that points boto/s3fs at it: credentials from the environment only."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket: str = "crawl2model") -> Iterator[dict[str, str]]:
    """Yields the environment variables a process needs to use the server (set them, or pass them on)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                     aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket=bucket)  # fmt: skip
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stored_keys(env: dict[str, str], url: str, modified: bool = False) -> dict[str, object]:
    """Every object under `url` (s3://bucket/prefix): key below the prefix -> size (with `modified`:
    its ETag and time of writing, which change when an object is written again)."""
    import s3fs

    fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=env["AWS_ENDPOINT_URL"], skip_instance_cache=True)  # fmt: skip
    root = url.removeprefix("s3://").rstrip("/")
    found = fs.find(root, detail=True)
    return {name[len(root) + 1 :]: (info["ETag"], info["LastModified"]) if modified else info["size"]
            for name, info in found.items()}  # fmt: skip
