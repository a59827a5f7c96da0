"""Images on the Kubernetes backend's nodes: what each node has, pulls onto a node, the pull policy.

* **What a node has** is what its kubelet lists in the Node object (``status.images``, each
  image's tags and digests), which the node reflector already holds: no API call reads it. Each
  node sync reports a node's images to the agents (:func:`~..db.images.report_agent_images`) only
  when its list changed (a thousand nodes sync often; their lists seldom change). A kubelet lists
  at most ``node_status_max_images`` (its ``nodeStatusMaxImages``, 50 by default) of the
  largest images: past that, an image missing from the list may still be there, and the rows of
  the others are kept. A node that lists no images at all (no ``status.images``: a simulated
  node) cannot tell; what was pulled there or installed is then what is known.
* **A pull onto a node** (an administrator's install, or a spawn's pull) is a one-shot pod
  pinned to the node (:func:`~.kube_args.pull_pod_manifest`, ``imagePullPolicy: Always``): its
  kubelet pulls the image to make its container, which runs ``true`` and ends. Its state is
  the progress (``ContainerCreating`` while the kubelet pulls); ``ErrImagePull`` and the like
  fail the pull with the kubelet's reason. The registry's credentials go as an image pull
  Secret of the pull's own. The pod and the Secret are deleted when the pull ends, however
  it ends.
* **At spawn** the session's image is looked for on the chosen node before its pod is made
  (:meth:`~.images.ImagesMixin.ensure_image` from ``start_session``): with ``pull_policy``
  ``ifnotpresent`` a node that lacks it pulls it while the session is PULLING, with the pull's
  state on the pending page. The default ``pull_policy`` follows the session pod's own
  ``image_pull_policy`` (the kubelet's): ``IfNotPresent`` → ``ifnotpresent``, ``Always`` →
  ``always``, ``Never`` → ``skip`` (the kubelet does not pull and the hub does not look; a
  missing image fails the pod with ``ErrImageNeverPull``). ``never`` (set it) makes the
  scheduler place sessions only on nodes that have their image. An image of a registry the
  database does not know is left to the kubelet (its ``image_pull_secrets``), unless it never pulls.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from kubernetes_asyncio.client import ApiException
from traitlets import Float, Integer, default

from ..core.images import PullError, node_references, normalize_reference, pull_object_name
from ..db import images as image_db
from .images import ImagesMixin, Pull
from .kube_args import PULL_CONTAINER, pull_pod_manifest, pull_secret_manifest
from .kube_status import api_reason

__all__ = ["KubeImages", "pull_pod_outcome"]

#: Seconds between looks at a pull's pod.
PULL_POLL_INTERVAL = 0.5
#: Waiting reasons of a container whose image could not be had.
PULL_FAILED = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
#: Waiting reasons of a container that was made from the image but could not run (the pull worked).
MADE_NOT_RUN = {"CreateContainerError", "RunContainerError", "ContainerCannotRun"}


def pull_pod_outcome(pod: dict[str, Any]) -> tuple[str, str]:
    """Where a pull's pod is: ``("pulling", what the kubelet does)``, ``("done", "")`` (its
    container was made, so the node has the image) or ``("failed", the kubelet's reason)``."""
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or []:
        if c.get("name") != PULL_CONTAINER:
            continue
        state = c.get("state") or {}
        if state.get("running") or state.get("terminated"):
            return "done", ""
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason") or ""
        if reason in PULL_FAILED:
            return "failed", f"{reason}: {waiting.get('message') or ''}".rstrip(": ")
        if reason in MADE_NOT_RUN:
            return "done", ""
        if reason == "ContainerCreating":
            return "pulling", "its kubelet is pulling the image"
        return "pulling", f"its container is {reason or 'waiting'}"
    if status.get("phase") in ("Failed", "Succeeded"):
        # Ended without a container (the kubelet rejected the pod): nothing says the image is there.
        return "failed", f"the node rejected the pull's pod: {status.get('reason') or 'Failed'}: " + (
            status.get("message") or ""
        ).rstrip()
    return "pulling", "waiting for its kubelet"


class KubeImages(ImagesMixin):
    """The Kubernetes backend's images; mixed into :class:`~.kube.KubeSessionSpawner` before
    :class:`~.kube_nodes.KubeNodesMixin` (whose node sync calls :meth:`_node_images_changed`)."""

    kube_pull_timeout = Float(
        1800.0,
        config=True,
        help="""Seconds a pull onto a node (its one-shot pod: the kubelet pulls the image for it) may
        take before it is given up and the pod deleted.""",
    )
    node_status_max_images = Integer(
        50,
        config=True,
        help="""The kubelets' ``nodeStatusMaxImages``: a node listing this many images may have more
        (the list holds the largest), so an image missing from it is not taken as absent.""",
    )

    @default("pull_policy")
    def _default_pull_policy_from_the_kubelets(self):
        return {"always": "always", "never": "skip"}.get(str(self.image_pull_policy).lower(), "ifnotpresent")

    #: Per node: the Node object last looked at (the reflector replaces it on every change), its
    #: references and whether its list was complete.
    _node_images: dict[str, tuple[dict, frozenset[str], bool]] = {}

    # --- what nodes have ----------------------------------------------------------------------

    def _node_images_changed(self, nodes: dict[str, dict]) -> dict[str, tuple[dict, frozenset[str], bool]]:
        """The nodes whose image list changed since it was last reported (not yet marked reported)."""
        known = KubeImages._node_images
        for name in [n for n in known if n not in nodes]:
            del known[name]  # gone: reported again if it comes back
        changed = {}
        for name, node in nodes.items():
            last = known.get(name)
            if last is not None and last[0] is node:
                continue  # the same object: nothing changed
            images = (node.get("status") or {}).get("images")
            if images is None:
                continue  # it lists none (simulated): nothing to report
            refs, complete = node_references(images), len(images) < self.node_status_max_images
            if last is not None and last[1] == refs and last[2] == complete:
                known[name] = (node, refs, complete)
                continue
            changed[name] = (node, refs, complete)
        return changed

    def _node_images_reported(self, changed: dict[str, tuple[dict, frozenset[str], bool]]) -> None:
        KubeImages._node_images.update(changed)

    def _report_node_images(self, db, changed: dict[str, tuple[dict, frozenset[str], bool]], alive: set[str]) -> None:
        """In the node sync's transaction: the image lists that changed, of the nodes still agents."""
        if not changed:
            return
        known = image_db.known_references(db)
        for name, (_node, refs, complete) in changed.items():
            if name in alive:
                image_db.report_agent_images(db, name, refs, complete=complete, known=known)

    async def image_present(self, agent_id: str, reference: str) -> bool | None:
        from .kube_nodes import KubeNodesMixin

        reflector = KubeNodesMixin._node_reflector
        node = reflector.nodes.get(agent_id) if reflector is not None else None
        if node is None:
            return None
        ref = normalize_reference(reference)
        images = (node.get("status") or {}).get("images")
        if images is not None:
            last = KubeImages._node_images.get(agent_id)
            refs = last[1] if last is not None and last[0] is node else node_references(images)
            if ref in refs:
                return True
        # Pulled or installed here, and the kubelet's list (refreshed every 30 s or so) lags behind.
        have = await self.run_db(image_db.installed_on, [agent_id])
        if ref in have.get(agent_id, ()):
            return True
        if images is None or len(images) >= self.node_status_max_images:
            return None
        return False

    def image_agent(self) -> str:
        return self._node

    def engine_pulls_unknown_registries(self) -> bool:
        # The kubelet pulls the session's image by image_pull_policy, with image_pull_secrets: an
        # image of a registry the database does not know is the kubelet's to find.
        return str(self.image_pull_policy).lower() != "never"

    # --- a pull onto a node -------------------------------------------------------------------

    async def pull_onto(self, agent_id: str, source: image_db.PullSource, pull: Pull) -> None:
        name = pull_object_name(agent_id, source.reference, uuid.uuid4().hex[:6])
        secret = f"{name}-auth" if source.auth_config else None
        pod_created = False
        try:
            try:
                if secret:
                    auth = source.auth_config
                    manifest = pull_secret_manifest(
                        secret, self.namespace, source.registry, auth["username"], auth["password"]
                    )
                    await self._api_json(self.api.create_namespaced_secret, self.namespace, manifest)
                manifest = pull_pod_manifest(
                    source.reference, agent_id, name=name, namespace=self.namespace, pull_secret=secret
                )
                pod_created = True
                await self._api_json(self.api.create_namespaced_pod, self.namespace, manifest)
            except ApiException as e:
                raise PullError(f"the API server refused the pull's pod: {api_reason(e)}") from None
            deadline = time.monotonic() + self.kube_pull_timeout
            while True:
                try:
                    pod = await self._api_json(self.api.read_namespaced_pod, name, self.namespace)
                except ApiException as e:
                    if e.status == 404:
                        raise PullError("the pull's pod was deleted") from None
                    pod, state, note = None, "pulling", f"the API server did not answer: {api_reason(e)}"
                if pod is not None:
                    state, note = pull_pod_outcome(pod)
                if state == "done":
                    return
                if state == "failed":
                    raise PullError(note)
                elapsed = time.monotonic() - pull.started
                pull.note = f"pulling {source.reference} onto node {agent_id}: {note} ({elapsed:.0f} s)"
                if time.monotonic() > deadline:
                    raise PullError(f"the node did not have the image within {self.kube_pull_timeout:.0f} s ({note})")
                await asyncio.sleep(PULL_POLL_INTERVAL)
        finally:
            await asyncio.shield(self._remove_pull_objects(name if pod_created else None, secret))

    async def _remove_pull_objects(self, pod: str | None, secret: str | None) -> None:
        for kind, obj in (("pod", pod), ("secret", secret)):
            if not obj:
                continue
            kwargs = {"grace_period_seconds": 0} if kind == "pod" else {}
            try:
                await self._api(getattr(self.api, f"delete_namespaced_{kind}"), obj, self.namespace, **kwargs)
            except Exception as e:  # gone already is fine
                self.log.debug("Deleting the pull's %s %s: %s", kind, obj, e)

    # --- the pending page ----------------------------------------------------------------------

    def pull_progress_event(self) -> dict[str, Any] | None:
        """The hub's pull; else, while the session's pod waits, its kubelet's own pull (its last
        event ``Pulling``: the kubelet pulls by ``image_pull_policy``)."""
        event = super().pull_progress_event()
        if event is not None or not self._pod_created or self.pod_id is None or not self.events_enabled:
            return event
        if self.event_reflector is None:
            return None
        events = self.events
        if events and events[-1].get("reason") == "Pulling":
            return {"progress": 55, "message": f"node {self._node}: {events[-1].get('message')}"}
        return None
