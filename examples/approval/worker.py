"""Build, then (after a person approves) deploy.

Run with: ``dagnats worker examples.approval.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

import dagnats

worker = dagnats.Worker(name="approval-worker")


class DeployRequest(BaseModel):
    service: str
    version: str


class Build(BaseModel):
    service: str
    version: str
    image: str


class Decision(BaseModel):
    """The data the approver passes to ``client.approve(token, data)``."""

    approver: str
    ticket: str


class DeployIn(BaseModel):
    """A step with several dependencies gets ``{dep_id: output}``."""

    build: Build
    approve: Decision


@worker.task()
async def build(ctx: dagnats.TaskContext, req: DeployRequest) -> Build:
    digest = hashlib.sha256(f"{req.service}:{req.version}".encode()).hexdigest()[:12]
    return Build(service=req.service, version=req.version, image=f"{req.service}@sha256:{digest}")


@worker.task()
async def deploy(ctx: dagnats.TaskContext, inp: DeployIn) -> str:
    return f"deployed {inp.build.image} (approved by {inp.approve.approver}, {inp.approve.ticket})"
