"""`make demo`: the local stack end to end, narrated.

Brings the stack up, runs a batch Job through the node agent that writes an
object into the bucket, shows the Job and the object, and tears down unless
asked to keep the stack.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from devstack import s3store, stack

NAMESPACE = "freshet-demo"
BUCKET = "freshet-demo"


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def _store_secret(s: stack.Stack) -> client.V1Secret:
    data = {
        "endpoint": s.s3.endpoint,
        "bucket": BUCKET,
        "accessKeyID": s.s3.access_key,
        "secretAccessKey": s.s3.secret_key,
        "secure": "false",
    }
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name="demo-store"),
        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    )


WRITER = """
import os
from minio import Minio
import io
c = Minio(os.environ["S3_ENDPOINT"], access_key=os.environ["AWS_ACCESS_KEY_ID"],
          secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], secure=False)
body = f"written by pod {os.environ['POD_NAME']}\\n".encode()
c.put_object(os.environ["S3_BUCKET"], "hello/from-a-job.txt", io.BytesIO(body), len(body))
print("wrote hello/from-a-job.txt")
"""


def _writer_job() -> dict[str, Any]:
    def secret_env(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": "demo-store", "key": key}}}

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello-s3"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "writer",
                            "image": "python:3.11-slim",
                            "command": ["python", "-c", WRITER],
                            "env": [
                                secret_env("S3_ENDPOINT", "endpoint"),
                                secret_env("S3_BUCKET", "bucket"),
                                secret_env("AWS_ACCESS_KEY_ID", "accessKeyID"),
                                secret_env("AWS_SECRET_ACCESS_KEY", "secretAccessKey"),
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                        }
                    ],
                }
            },
        },
    }


def run(state: Path, keep: bool = False) -> int:
    say("starting the local stack (control plane, S3 store, node agent)")
    s = stack.up(state, agent=True)
    try:
        # kubernetes.config is unannotated.
        api = config.new_client_from_config(s.kubeconfig)  # type: ignore[no-untyped-call]
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        print(f"API server {client.VersionApi(api).get_code().git_version} at {s.plane.server}")
        s3 = s3store.client(s.s3)
        if not s3.bucket_exists(BUCKET):
            s3.make_bucket(BUCKET)
        namespaces = core.list_namespace().items
        if NAMESPACE not in {n.metadata.name for n in namespaces if n.metadata is not None}:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        core.create_namespaced_secret(NAMESPACE, _store_secret(s))

        say("running a batch Job whose pod writes an object into the bucket")
        # Annotated as V1Job; the client's validate_call turns the manifest dict into one.
        batch.create_namespaced_job(NAMESPACE, _writer_job())  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        job = batch.read_namespaced_job("hello-s3", NAMESPACE)
        while time.monotonic() < deadline:
            job = batch.read_namespaced_job("hello-s3", NAMESPACE)
            if job.status is not None and (job.status.succeeded or job.status.failed):
                break
            time.sleep(0.5)
        status = job.status or client.V1JobStatus()
        print(f"Job hello-s3: succeeded={status.succeeded} failed={status.failed}")
        obj = s3.get_object(BUCKET, "hello/from-a-job.txt").read().decode()
        print(f"s3://{BUCKET}/hello/from-a-job.txt: {obj.strip()}")
        ok = bool(status.succeeded)
        say("demo " + ("succeeded" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if keep:
            print(f"\nstack left running: export KUBECONFIG={s.kubeconfig}; `make down` stops it")
        else:
            say("tearing down")
            stack.down(state)
